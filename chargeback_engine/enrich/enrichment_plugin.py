"""The built-in enrichment plugin: the ``files`` enricher and the ``enrichment`` exporter."""

from __future__ import annotations

from collections.abc import Callable

import chargeback_engine
from chargeback_engine.components import Exporter
from chargeback_engine.enrich.exporter import EnrichmentExporter
from chargeback_engine.enrich.files_enricher import FilesEnricher
from chargeback_engine.enrich.model import Enricher


@chargeback_engine.hookimpl
def chargeback_register_enrichers(register: Callable[[Enricher], None]) -> None:
    register(FilesEnricher())


@chargeback_engine.hookimpl
def chargeback_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(EnrichmentExporter())
