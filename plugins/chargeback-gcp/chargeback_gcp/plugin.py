"""The plugin module named by this distribution's ``chargeback_engine`` entry point."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_engine.components import Collector
from chargeback_gcp.bigquery_export import BigQueryBillingCollector


@chargeback_engine.hookimpl
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    register(BigQueryBillingCollector())
