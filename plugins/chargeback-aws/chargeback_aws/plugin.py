"""The plugin module named by this distribution's ``chargeback_engine`` entry point."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector
from chargeback_engine.components import Collector


@chargeback_engine.hookimpl
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    register(CostExplorerCollector())
    register(DataExportsCollector())
