"""The plugin module named by this distribution's ``chargeback_engine`` entry point."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_engine.plugin import Collector, Enricher
from chargeback_gcp.bigquery_export import BigQueryBillingCollector
from chargeback_gcp.labels import AssetLabelsEnricher, ProjectLabelsEnricher


@chargeback_engine.hookimpl
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    register(BigQueryBillingCollector())


@chargeback_engine.hookimpl
def chargeback_register_enrichers(register: Callable[[Enricher], None]) -> None:
    register(ProjectLabelsEnricher())
    register(AssetLabelsEnricher())
