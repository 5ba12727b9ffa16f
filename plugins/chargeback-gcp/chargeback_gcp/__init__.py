"""Google Cloud collectors for chargeback-engine, registered through the ``chargeback_engine`` entry points."""

from chargeback_gcp.bigquery_export import BigQueryBillingCollector

__all__ = ["BigQueryBillingCollector"]
