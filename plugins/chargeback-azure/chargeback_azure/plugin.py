"""The plugin module named by this distribution's ``chargeback_engine`` entry point."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_azure.cost_query import CostQueryCollector
from chargeback_azure.focus_export import FocusExportCollector
from chargeback_azure.resource_graph import ResourceGraphEnricher
from chargeback_engine.plugin import Collector, Enricher


@chargeback_engine.hookimpl
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    register(CostQueryCollector())
    register(FocusExportCollector())


@chargeback_engine.hookimpl
def chargeback_register_enrichers(register: Callable[[Enricher], None]) -> None:
    register(ResourceGraphEnricher())
