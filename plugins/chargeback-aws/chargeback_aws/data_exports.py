"""``aws-data-exports``: CUR 2.0 and FOCUS exports delivered to S3 by AWS Data Exports.

The export's ``Manifest.json`` names every data file of one delivery; we read exactly those
(never a prefix listing, which mixes old and new deliveries) and stream each gzip CSV or
Parquet file batch by batch. The manifest's ``executionId`` (``assemblyId`` for legacy CUR)
is the source version, so a restated month is a new version.

Amortized cost (``EffectiveCost``) for commitment line types in CUR 2.0:

=========================  ==========================================================
line_item_line_item_type   EffectiveCost
=========================  ==========================================================
SavingsPlanCoveredUsage    savings_plan_savings_plan_effective_cost
SavingsPlanNegation        0 (the covered usage already carries its effective cost)
SavingsPlanRecurringFee    savings_plan_total_commitment_to_date - savings_plan_used_commitment
SavingsPlanUpfrontFee      0 (amortized into covered usage)
DiscountedUsage            reservation_effective_cost
RIFee                      reservation_unused_amortized_upfront_fee_for_billing_period
                           + reservation_unused_recurring_fee
Fee with a reservation     0 (an RI upfront fee, amortized into DiscountedUsage)
anything else              line_item_unblended_cost
=========================  ==========================================================

``BilledCost`` is always ``line_item_unblended_cost``: what the invoice says.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from typing import IO, Any
from urllib.parse import urlparse

import pyarrow as pa

from chargeback_aws.clients import SDK_LOGGERS, ClientFactory, call, default_client, max_attempts
from chargeback_engine.plugin import (
    DEADLINE_SCHEMA,
    BatchMapper,
    CollectedSource,
    InputError,
    Period,
    RetryPolicy,
    empty_cost_table,
    focus_mapper,
    get_logger,
    iter_file_batches,
    redact_sdk_logs,
    table_details,
)

log = get_logger(__name__)

NAME = "aws-data-exports"

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "A CUR 2.0 or FOCUS export delivered to S3 by AWS Data Exports.",
    "required": ["bucket", "export_name", "table"],
    "additionalProperties": False,
    "properties": {
        "deadline_seconds": DEADLINE_SCHEMA,
        "bucket": {"type": "string", "minLength": 3},
        "prefix": {"type": "string", "default": "", "description": "The S3 path prefix set on the export."},
        "export_name": {"type": "string", "minLength": 1},
        "table": {"enum": ["cur2", "focus"], "description": "COST_AND_USAGE_REPORT or FOCUS_1_0_AWS."},
        "region": {"type": "string"},
    },
}

_CUR2_MONEY = [
    "line_item_unblended_cost",
    "pricing_public_on_demand_cost",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "line_item_usage_amount",
    "pricing_public_on_demand_rate",
]
_CUR2_TEXT = [
    "bill_payer_account_id",
    "bill_payer_account_name",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_line_item_type",
    "line_item_line_item_description",
    "line_item_currency_code",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_resource_id",
    "line_item_product_code",
    "line_item_usage_type",
    "pricing_unit",
    "product_region_code",
    "product_sku",
    "savings_plan_savings_plan_a_r_n",
    "reservation_reservation_a_r_n",
    "product_product_family",
]

_CUR2_SELECT = """
SELECT
  line_item_unblended_cost AS BilledCost,
  CASE
    WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
    WHEN line_item_line_item_type IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
    WHEN line_item_line_item_type = 'SavingsPlanRecurringFee'
      THEN savings_plan_total_commitment_to_date - savings_plan_used_commitment
    WHEN line_item_line_item_type = 'DiscountedUsage' THEN reservation_effective_cost
    WHEN line_item_line_item_type = 'RIFee'
      THEN coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
         + coalesce(reservation_unused_recurring_fee, 0)
    WHEN line_item_line_item_type = 'Fee' AND coalesce(reservation_reservation_a_r_n, '') <> '' THEN 0
    ELSE line_item_unblended_cost
  END AS EffectiveCost,
  pricing_public_on_demand_cost AS ListCost,
  line_item_currency_code AS BillingCurrency,
  bill_payer_account_id AS BillingAccountId,
  bill_payer_account_name AS BillingAccountName,
  bill_billing_period_start_date AS BillingPeriodStart,
  bill_billing_period_end_date AS BillingPeriodEnd,
  line_item_usage_start_date AS ChargePeriodStart,
  line_item_usage_end_date AS ChargePeriodEnd,
  CASE
    WHEN line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Usage'
    WHEN line_item_line_item_type = 'Tax' THEN 'Tax'
    WHEN line_item_line_item_type IN ('Credit', 'Refund', 'SavingsPlanNegation', 'EdpDiscount',
                                      'BundledDiscount', 'PrivateRateDiscount', 'DistributorDiscount') THEN 'Credit'
    WHEN line_item_line_item_type IN ('RIFee', 'Fee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee')
      THEN 'Purchase'
    ELSE 'Adjustment'
  END AS ChargeCategory,
  line_item_line_item_description AS ChargeDescription,
  coalesce(nullif(savings_plan_savings_plan_a_r_n, ''), nullif(reservation_reservation_a_r_n, '')) AS CommitmentDiscountId,
  CASE
    WHEN coalesce(savings_plan_savings_plan_a_r_n, '') <> '' THEN 'Savings Plan'
    WHEN coalesce(reservation_reservation_a_r_n, '') <> '' THEN 'Reservation'
  END AS CommitmentDiscountType,
  line_item_usage_amount AS ConsumedQuantity,
  pricing_unit AS ConsumedUnit,
  'AWS' AS ProviderName,
  'AWS' AS InvoiceIssuerName,
  product_region_code AS RegionId,
  line_item_resource_id AS ResourceId,
  line_item_product_code AS ServiceName,
  product_product_family AS ServiceCategory,
  product_sku AS SkuId,
  line_item_usage_account_id AS SubAccountId,
  line_item_usage_account_name AS SubAccountName,
  coalesce(resource_tags, '{}') AS Tags
FROM batch
"""


def cur2_mapper(source_id: str) -> BatchMapper:
    return BatchMapper(_CUR2_SELECT, source_id=source_id, money=_CUR2_MONEY, text=_CUR2_TEXT, tags=["resource_tags"])


class DataExportsCollector:
    name = NAME
    config_schema = CONFIG_SCHEMA

    def __init__(self, client_factory: ClientFactory = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        source_id = config.get("id", NAME)
        retry = self._retry.begin(config.get("deadline_seconds"), max_attempts=max_attempts())
        redact_sdk_logs(SDK_LOGGERS)
        s3 = self._client_factory("s3", config.get("region"))
        bucket = config["bucket"]
        manifest_key, manifest = self._manifest(s3, bucket, config, period, retry)
        version = manifest.get("executionId") or manifest.get("assemblyId")
        if not version:
            raise InputError(f"s3://{bucket}/{manifest_key}: the manifest has neither executionId nor assemblyId")
        mapper = cur2_mapper(source_id) if config["table"] == "cur2" else focus_mapper(source_id)
        parts: list[pa.Table] = []
        files = _data_files(manifest, bucket)
        for file_bucket, key in files:
            where = f"s3://{file_bucket}/{key}"
            read = 0
            with self._open(s3, file_bucket, key, retry) as stream:
                for batch in iter_file_batches(stream, name=key, columns=mapper.columns):
                    parts.append(mapper.map(batch, where=where, first_row=read + 1))
                    read += batch.num_rows
            log.debug("aws.data_exports.file_read", source=source_id, file=where)
        table = pa.concat_tables(parts) if parts else empty_cost_table()
        details = {
            **table_details(table),
            "manifest": f"s3://{bucket}/{manifest_key}",
            "files": len(files),
            "rounding": mapper.rounding.as_details(),
        }
        yield CollectedSource(source_id, table, f"{config['table']}:{version}", details)

    def _manifest(
        self, s3: Any, bucket: str, config: Mapping[str, Any], period: Period, retry: RetryPolicy
    ) -> tuple[str, Mapping[str, Any]]:
        """The newest ``*-Manifest.json`` of the period's partition (overwrite or create-new delivery)."""
        root = "/".join(p for p in (config.get("prefix", "").strip("/"), config["export_name"]) if p)
        partition = f"{root}/metadata/BILLING_PERIOD={period}/"
        candidates: list[tuple[Any, str]] = []
        paginator = s3.get_paginator("list_objects_v2")
        listing = call(
            retry, lambda: list(paginator.paginate(Bucket=bucket, Prefix=partition)), f"{NAME}: ListObjectsV2"
        )
        for page in listing:
            for item in page.get("Contents", []):
                if item["Key"].endswith("-Manifest.json"):
                    candidates.append((item["LastModified"], item["Key"]))
        if not candidates:
            raise InputError(f"s3://{bucket}/{partition}: no Manifest.json for period {period}")
        key = max(candidates)[1]
        body = call(retry, lambda: s3.get_object(Bucket=bucket, Key=key)["Body"].read(), f"{NAME}: GetObject")
        try:
            return key, json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputError(f"s3://{bucket}/{key}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc

    def _open(self, s3: Any, bucket: str, key: str, retry: RetryPolicy) -> IO[bytes]:
        """A spooled local copy: Parquet needs to seek, and a retried download must start clean."""

        def download() -> IO[bytes]:
            spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
            s3.download_fileobj(bucket, key, spool)
            spool.seek(0)
            return spool

        return call(retry, download, f"{NAME}: GetObject s3://{bucket}/{key}")


def _data_files(manifest: Mapping[str, Any], bucket: str) -> list[tuple[str, str]]:
    """Data Exports list full ``s3://`` URIs in ``dataFiles``; legacy CUR lists keys in ``reportKeys``."""
    if "dataFiles" in manifest:
        uris = [urlparse(uri) for uri in manifest["dataFiles"]]
        return [(uri.netloc, uri.path.lstrip("/")) for uri in uris]
    return [(manifest.get("bucket", bucket), key) for key in manifest.get("reportKeys", [])]
