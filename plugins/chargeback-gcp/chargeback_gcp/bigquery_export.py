"""``gcp-bigquery-billing``: the Cloud Billing export to BigQuery (standard, detailed or FOCUS).

The query is parameterised (the table name, which BigQuery cannot take as a parameter, is
checked against a strict pattern by the schema) and casts every amount to NUMERIC, so
costs arrive as ``Decimal`` and never pass through a float on our side.

Credits rule. The export keeps credits (sustained-use, committed-use, promotions, free
tier...) in a ``credits`` array beside the gross ``cost``; they are negative. With
``credits: net`` (the default) each line's BilledCost and EffectiveCost are
``cost + SUM(credits.amount)``, which is what the invoice charges for that line. With
``credits: separate`` the line keeps its gross cost and every credit becomes a row of its
own (ChargeCategory ``Credit``, ChargeDescription the credit type), so a policy can
allocate promotions differently from usage. Either way the total is the same.

Restatements. The export is append-only: late usage and corrections arrive as new rows
with a later ``export_time``. The largest ``export_time`` read is the source version, and
with ``state_dir`` set it is also a high-water mark: the next collection of the same
month only asks BigQuery for rows exported after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.plugin import (
    DEADLINE_SCHEMA,
    TIMESTAMP,
    CollectedSource,
    PageLog,
    Period,
    RetryPolicy,
    Rounding,
    content_version,
    get_logger,
    normalise,
    redact_sdk_logs,
    sha256_hex,
    table_details,
    tags_json,
    to_money,
    write_table_atomic,
)
from chargeback_gcp.clients import (
    API_TIMEOUT,
    QUERY_TIMEOUT,
    SDK_LOGGERS,
    GoogleClients,
    call,
    default_clients,
    no_retry,
)

log = get_logger(__name__)

NAME = "gcp-bigquery-billing"
#: Rows per result page; a last page of exactly this many rows with no token is suspicious.
PAGE_ROWS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "The Cloud Billing export to BigQuery.",
    "required": ["table", "kind"],
    "additionalProperties": False,
    "properties": {
        "deadline_seconds": DEADLINE_SCHEMA,
        "table": {
            "type": "string",
            "pattern": r"^[a-z][a-z0-9-]{4,61}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_$-]{1,1024}$",
            "description": "project.dataset.table of the export table or FOCUS table/view.",
        },
        "kind": {"enum": ["standard", "detailed", "focus"]},
        "credits": {"enum": ["net", "separate"], "default": "net"},
        "project": {"type": "string", "description": "Project that runs (and pays for) the query jobs."},
        "location": {"type": "string", "description": "BigQuery location of the dataset, e.g. US or EU."},
        "state_dir": {"type": "string", "description": "Where the export_time high-water mark and rows are kept."},
        "enrich_names": {
            "type": "boolean",
            "default": False,
            "description": "Fill BillingAccountName and check projects against the Cloud Billing API.",
        },
        "list_price_services": {
            "type": "array",
            "items": {"type": "string", "pattern": "^services/[A-Z0-9-]+$"},
            "description": "Catalog services (e.g. services/6F81-5844-456A) whose SKU list "
            "prices are checked against ListCost.",
        },
    },
}

#: Output columns of every query, in order; amounts are NUMERIC.
_COLUMNS = (
    "billed_cost",
    "effective_cost",
    "list_cost",
    "currency",
    "billing_account_id",
    "charge_start",
    "charge_end",
    "charge_category",
    "charge_description",
    "service",
    "sku_id",
    "project_id",
    "project_name",
    "region",
    "resource_id",
    "resource_name",
    "pricing_quantity",
    "pricing_unit",
    "labels",
    "export_time",
)

_EXPORT_LINES = """
WITH lines AS (
  SELECT
    CAST(cost AS NUMERIC) AS cost,
    IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c), 0) AS credits_total,
    credits,
    CAST(cost_at_list AS NUMERIC) AS list_cost,
    currency, billing_account_id,
    usage_start_time AS charge_start, usage_end_time AS charge_end,
    CASE cost_type WHEN 'regular' THEN 'Usage' WHEN 'tax' THEN 'Tax' ELSE 'Adjustment' END AS charge_category,
    sku.description AS charge_description, service.description AS service, sku.id AS sku_id,
    project.id AS project_id, project.name AS project_name, location.region AS region,
    {resource} ,
    CAST(usage.amount_in_pricing_units AS NUMERIC) AS pricing_quantity, usage.pricing_unit AS pricing_unit,
    TO_JSON_STRING(labels) AS labels, export_time
  FROM `{table}`
  WHERE invoice.month = @invoice_month AND export_time > @since
)
"""
_COMMON = (
    "currency, billing_account_id, charge_start, charge_end, {category}, {description}, service, sku_id, "
    "project_id, project_name, region, resource_id, resource_name, pricing_quantity, pricing_unit, labels, "
    "export_time"
)
_NET = (
    "SELECT cost + credits_total AS billed_cost, cost + credits_total AS effective_cost, list_cost, "
    + _COMMON.format(category="charge_category", description="charge_description")
    + " FROM lines"
)
_SEPARATE = (
    "SELECT cost AS billed_cost, cost AS effective_cost, list_cost, "
    + _COMMON.format(category="charge_category", description="charge_description")
    + " FROM lines\n"
    "UNION ALL\n"
    "SELECT CAST(c.amount AS NUMERIC), CAST(c.amount AS NUMERIC), CAST(NULL AS NUMERIC), "
    + _COMMON.format(category="'Credit'", description="c.type")
    + " FROM lines, UNNEST(credits) AS c"
)
_FOCUS = """
SELECT
  CAST(BilledCost AS NUMERIC) AS billed_cost, CAST(EffectiveCost AS NUMERIC) AS effective_cost,
  CAST(ListCost AS NUMERIC) AS list_cost, BillingCurrency AS currency, BillingAccountId AS billing_account_id,
  ChargePeriodStart AS charge_start, ChargePeriodEnd AS charge_end, ChargeCategory AS charge_category,
  ChargeDescription AS charge_description, ServiceName AS service, SkuId AS sku_id, SubAccountId AS project_id,
  SubAccountName AS project_name, RegionId AS region, ResourceId AS resource_id, ResourceName AS resource_name,
  CAST(PricingQuantity AS NUMERIC) AS pricing_quantity, PricingUnit AS pricing_unit,
  TO_JSON_STRING(Tags) AS labels, CAST(NULL AS TIMESTAMP) AS export_time
FROM `{table}`
WHERE BillingPeriodStart = @period_start
"""
_ORDER = (
    "\nORDER BY export_time, charge_start, project_id, sku_id, charge_category, charge_description, labels, billed_cost"
)


def build_query(config: Mapping[str, Any]) -> str:
    """The SQL for a source; only the (schema-checked) table name is spliced in, values are parameters."""
    table = config["table"]
    if config["kind"] == "focus":
        return _FOCUS.format(table=table) + _ORDER
    resource = (
        "resource.global_name AS resource_id, resource.name AS resource_name"
        if config["kind"] == "detailed"
        else "CAST(NULL AS STRING) AS resource_id, CAST(NULL AS STRING) AS resource_name"
    )
    body = _SEPARATE if config.get("credits", "net") == "separate" else _NET
    return _EXPORT_LINES.format(resource=resource, table=table) + body + _ORDER


class BigQueryBillingCollector:
    name = NAME
    config_schema = CONFIG_SCHEMA

    def __init__(
        self,
        clients_factory: Callable[[str | None, str | None], GoogleClients] = default_clients,
        retry: RetryPolicy | None = None,
    ):
        self._clients_factory = clients_factory
        self._retry = retry or RetryPolicy()

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        source_id = config.get("id", NAME)
        retry = self._retry.begin(config.get("deadline_seconds"))
        redact_sdk_logs(SDK_LOGGERS)
        clients = self._clients_factory(config.get("project"), config.get("location"))
        state = _State(config, period) if config.get("state_dir") and config["kind"] != "focus" else None
        kept = state.load() if state else None
        since = state.mark if state and kept is not None else _EPOCH
        records, pages = call(
            retry, lambda: self._query(clients, config, period, since, source_id), f"{NAME}: query {config['table']}"
        )
        rounding = Rounding()
        fresh = _to_arrow(records, rounding, source_id)
        raw = pa.concat_tables([kept, fresh]) if kept is not None else fresh
        marks = [m for m in raw["export_time"].to_pylist() if m is not None]
        if state:
            state.save(raw)
        details: dict[str, Any] = {
            "rows_fetched": len(records),
            "incremental_since": since.isoformat(),
            **pages.as_details(),
            "rounding": rounding.as_details(),
        }
        if config.get("enrich_names"):
            raw = self._enrich(clients, raw, details, retry)
        if config.get("list_price_services"):
            details["list_price_check"] = self._check_list_prices(clients, raw, config["list_price_services"], retry)
        table = _to_focus(raw, source_id, period, rounding)
        version = f"export_time:{max(marks).isoformat()}" if marks else content_version(table)
        yield CollectedSource(source_id, table, version, {**table_details(table), **details})

    def _query(
        self, clients: GoogleClients, config: Mapping[str, Any], period: Period, since: datetime, source_id: str
    ) -> tuple[list[dict[str, Any]], PageLog]:
        """Run the query and read every result page (a retry starts over: BigQuery caches the result)."""
        from google.cloud import bigquery

        if config["kind"] == "focus":
            parameters = [
                bigquery.ScalarQueryParameter(
                    "period_start", "TIMESTAMP", datetime.combine(period.start, datetime.min.time(), UTC)
                )
            ]
        else:
            parameters = [
                bigquery.ScalarQueryParameter("invoice_month", "STRING", f"{period.year:04d}{period.month:02d}"),
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
            ]
        result = clients.bigquery.query_and_wait(
            build_query(config),
            job_config=bigquery.QueryJobConfig(query_parameters=parameters),
            location=config.get("location"),
            api_timeout=API_TIMEOUT,
            wait_timeout=QUERY_TIMEOUT,
            retry=no_retry(),
            job_retry=None,
            page_size=PAGE_ROWS,
        )
        pages = PageLog(f"{source_id}: BigQuery", page_limit=PAGE_ROWS)
        records: list[dict[str, Any]] = []
        for page in result.pages:
            page_rows = [dict(row.items()) for row in page]
            if pages.accept(page_rows, result.next_page_token):
                records.extend(page_rows)
        return records, pages

    def _enrich(self, clients: GoogleClients, raw: pa.Table, details: dict[str, Any], retry: RetryPolicy) -> pa.Table:
        """BillingAccountName from the Cloud Billing API; projects no longer on the account are reported."""
        accounts = call(
            retry,
            lambda: {
                a.name.removeprefix("billingAccounts/"): a.display_name
                for a in clients.billing.list_billing_accounts(timeout=API_TIMEOUT, retry=no_retry())
            },
            f"{NAME}: list billing accounts",
        )
        moved: set[str] = set()
        for account in sorted({a for a in raw["billing_account_id"].to_pylist() if a}):
            linked = call(
                retry,
                partial(_linked_projects, clients, account),
                f"{NAME}: list projects of billing account {account}",
            )
            in_data = {
                p
                for p, a in zip(raw["project_id"].to_pylist(), raw["billing_account_id"].to_pylist())
                if a == account and p
            }
            moved |= in_data - linked
        if moved:
            log.warning("gcp.projects_not_on_billing_account", projects=len(moved))
        details["projects_not_on_billing_account"] = sorted(moved)
        names = pa.array([accounts.get(a) for a in raw["billing_account_id"].to_pylist()], pa.string())
        return raw.append_column("billing_account_name", names)

    def _check_list_prices(
        self, clients: GoogleClients, raw: pa.Table, services: list[str], retry: RetryPolicy
    ) -> dict[str, int]:
        """Compare ListCost with Catalog list price × quantity for single-tier SKUs (units + nanos, exact)."""
        prices: dict[tuple[str, str], tuple[Decimal, str]] = {}
        for service in services:
            skus = call(retry, partial(_skus, clients, service), f"{NAME}: list SKUs of {service}")
            for sku in skus:
                for info in sku.pricing_info[:1]:
                    rates = info.pricing_expression.tiered_rates
                    if len(rates) == 1:
                        money = rates[0].unit_price
                        price = Decimal(money.units) + Decimal(money.nanos).scaleb(-9)
                        prices[(sku.sku_id, money.currency_code)] = (
                            price,
                            info.pricing_expression.usage_unit_description,
                        )
        checked = differing = 0
        for row in raw.select(["sku_id", "currency", "pricing_quantity", "pricing_unit", "list_cost"]).to_pylist():
            known = prices.get((row["sku_id"], row["currency"]))
            if (
                known is None
                or row["list_cost"] is None
                or row["pricing_quantity"] is None
                or known[1] != row["pricing_unit"]
            ):
                continue
            checked += 1
            if abs(known[0] * row["pricing_quantity"] - row["list_cost"]) > Decimal("0.01"):
                differing += 1
        if differing:
            log.warning("gcp.list_price_mismatch", rows=differing, checked=checked)
        return {"checked": checked, "differing": differing, "catalog_skus": len(prices)}


def _linked_projects(clients: GoogleClients, account: str) -> set[str]:
    pages = clients.billing.list_project_billing_info(
        name=f"billingAccounts/{account}", timeout=API_TIMEOUT, retry=no_retry()
    )
    return {p.project_id for p in pages}


def _skus(clients: GoogleClients, service: str) -> list[Any]:
    return list(clients.catalog.list_skus(parent=service, timeout=API_TIMEOUT, retry=no_retry()))


def _to_arrow(records: list[dict[str, Any]], rounding: Rounding, source_id: str) -> pa.Table:
    """Query rows as an Arrow table of the query's columns; NUMERIC values stay Decimal."""
    where = f"{source_id}: BigQuery"
    columns: dict[str, pa.Array] = {}
    for name in _COLUMNS:
        values = [r.get(name) for r in records]
        if name in ("billed_cost", "effective_cost", "list_cost", "pricing_quantity"):
            columns[name] = to_money(
                pa.array([None if v is None else str(v) for v in values], pa.string()),
                column=name,
                where=where,
                rounding=rounding,
            ).combine_chunks()
        elif name in ("charge_start", "charge_end", "export_time"):
            columns[name] = pa.array(values, TIMESTAMP)
        elif name == "labels":
            columns[name] = pa.array([_labels_json(v) for v in values], pa.string())
        else:
            columns[name] = pa.array(values, pa.string())
    return pa.table(columns)


def _labels_json(text: str | None) -> str:
    """``[{"key": k, "value": v}, ...]`` (export labels) or a JSON object (FOCUS Tags) as Tags JSON."""
    parsed = json.loads(text) if text else {}
    if isinstance(parsed, list):
        parsed = {item["key"]: item.get("value") for item in parsed}
    return tags_json(parsed or {})


def _to_focus(raw: pa.Table, source_id: str, period: Period, rounding: Rounding) -> pa.Table:
    n = raw.num_rows
    start = datetime.combine(period.start, datetime.min.time(), UTC)
    end = datetime.combine(period.end, datetime.min.time(), UTC)
    renamed = {
        "BilledCost": raw["billed_cost"],
        "EffectiveCost": raw["effective_cost"],
        "ListCost": raw["list_cost"],
        "BillingCurrency": raw["currency"],
        "BillingAccountId": raw["billing_account_id"],
        "BillingPeriodStart": pa.array([start] * n, TIMESTAMP),
        "BillingPeriodEnd": pa.array([end] * n, TIMESTAMP),
        "ChargePeriodStart": raw["charge_start"],
        "ChargePeriodEnd": raw["charge_end"],
        "ChargeCategory": raw["charge_category"],
        "ChargeDescription": raw["charge_description"],
        "ServiceName": raw["service"],
        "SkuId": raw["sku_id"],
        "SubAccountId": raw["project_id"],
        "SubAccountName": raw["project_name"],
        "RegionId": raw["region"],
        "ResourceId": raw["resource_id"],
        "ResourceName": raw["resource_name"],
        "PricingQuantity": raw["pricing_quantity"],
        "PricingUnit": raw["pricing_unit"],
        "Tags": raw["labels"],
        "ProviderName": pa.array(["Google Cloud"] * n, pa.string()),
    }
    if "billing_account_name" in raw.column_names:
        renamed["BillingAccountName"] = raw["billing_account_name"]
    return normalise(pa.table(renamed), source_id=source_id, rounding=rounding, where=f"{source_id}: BigQuery")


class _State:
    """The rows read so far for one table and month, with their export_time high-water mark."""

    def __init__(self, config: Mapping[str, Any], period: Period):
        key = sha256_hex(f"{config['table']}|{config.get('credits', 'net')}")[:16]
        self.path = Path(config["state_dir"]) / f"{NAME}-{key}-{period}.parquet"
        self.mark = _EPOCH

    def load(self) -> pa.Table | None:
        if not self.path.exists():
            return None
        table = pq.read_table(self.path)
        marks = [m for m in table["export_time"].to_pylist() if m is not None]
        self.mark = max(marks) if marks else _EPOCH
        return table

    def save(self, table: pa.Table) -> None:
        """Written atomically, so a crash never leaves half a state behind."""
        write_table_atomic(table, self.path)
