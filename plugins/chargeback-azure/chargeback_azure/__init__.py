"""Azure collectors for chargeback-engine, registered through the ``chargeback_engine`` entry points."""

from chargeback_azure.cost_query import CostQueryCollector
from chargeback_azure.focus_export import FocusExportCollector

__all__ = ["CostQueryCollector", "FocusExportCollector"]
