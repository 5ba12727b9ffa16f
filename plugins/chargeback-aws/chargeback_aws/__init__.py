"""AWS collectors for chargeback-engine, registered through the ``chargeback_engine`` entry points."""

from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector

__all__ = ["CostExplorerCollector", "DataExportsCollector"]
