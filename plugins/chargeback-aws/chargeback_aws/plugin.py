"""The plugin module named by this distribution's ``chargeback_engine`` entry point."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector
from chargeback_aws.enrichers import AccountTagsEnricher, ResourceTagsEnricher
from chargeback_engine.plugin import Collector, Enricher


@chargeback_engine.hookimpl
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    register(CostExplorerCollector())
    register(DataExportsCollector())


@chargeback_engine.hookimpl
def chargeback_register_enrichers(register: Callable[[Enricher], None]) -> None:
    register(ResourceTagsEnricher())
    register(AccountTagsEnricher())
