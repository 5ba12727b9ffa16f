"""``azure-cost-query``: daily or monthly costs from the Cost Management ``Query - Usage`` API.

Traps handled here: the query needs an aggregation and allows two groupings at most; the
SDK stops after the first page (1,000 rows) without a word, so we follow ``nextLink``
ourselves; the SDK parses costs as floats, so we send the request through its pipeline
and parse the raw JSON with ``Decimal``; 429 answers are retried no sooner than their
``Retry-After``. ActualCost and AmortizedCost for the same scope and period would count
the same money twice, so asking for both is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pyarrow as pa

from chargeback_azure.http import (
    CONNECTION_TIMEOUT,
    READ_TIMEOUT,
    SDK_LOGGERS,
    Throttled,
    call,
    default_credential,
    retry_wait,
)
from chargeback_engine.plugin import (
    DEADLINE_SCHEMA,
    TIMESTAMP,
    CollectedSource,
    InputError,
    PageLog,
    Period,
    RetryPolicy,
    Rounding,
    content_version,
    get_logger,
    normalise,
    redact_sdk_logs,
    table_details,
    tags_json,
    to_money,
)

log = get_logger(__name__)

NAME = "azure-cost-query"
API_VERSION = "2023-03-01"
#: Rows per page of Query - Usage; a last page of exactly this many rows is suspicious.
PAGE_ROWS = 1000

#: Grouping dimensions we accept, and the FOCUS column each fills.
DIMENSIONS = {
    "ServiceName": "ServiceName",
    "SubscriptionId": "SubAccountId",
    "SubscriptionName": "SubAccountName",
    "ResourceLocation": "RegionId",
    "ResourceId": "ResourceId",
    "ResourceType": "ResourceType",
    "ChargeType": "ChargeCategory",
    "MeterCategory": "ServiceCategory",
}

#: Cost Management ChargeType values, as FOCUS ChargeCategory.
CHARGE_TYPE_CATEGORY = {
    "Usage": "Usage",
    "UnusedReservation": "Usage",
    "UnusedSavingsPlan": "Usage",
    "Purchase": "Purchase",
    "Refund": "Credit",
    "Tax": "Tax",
    "Adjustment": "Adjustment",
}

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "Costs from Azure Cost Management Query - Usage.",
    "required": ["scope", "cost_type"],
    "additionalProperties": False,
    "properties": {
        "deadline_seconds": DEADLINE_SCHEMA,
        "scope": {
            "type": "string",
            "pattern": "^/([Ss]ubscriptions|providers)/",
            "description": "e.g. /subscriptions/<id> or /providers/Microsoft.Billing/billingAccounts/<id>",
        },
        "cost_type": {"enum": ["ActualCost", "AmortizedCost"]},
        "granularity": {"enum": ["Daily", "Monthly"], "default": "Daily"},
        "group_by": {
            "type": "array",
            "maxItems": 2,
            "description": "At most two groupings, as the Query API allows.",
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["dimension"],
                        "properties": {"dimension": {"enum": sorted(DIMENSIONS)}},
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["tag"],
                        "properties": {"tag": {"type": "string", "minLength": 1}},
                    },
                ]
            },
        },
        "endpoint": {
            "type": "string",
            "default": "https://management.azure.com",
            "description": "The ARM endpoint; change it only for sovereign clouds.",
        },
    },
}


def default_client(endpoint: str) -> Any:
    """The Cost Management SDK client, used only for its authenticated pipeline (``send_request``)."""
    from azure.mgmt.costmanagement import CostManagementClient

    return CostManagementClient(default_credential(), base_url=endpoint, retry_total=0)


class CostQueryCollector:
    name = NAME
    config_schema = CONFIG_SCHEMA

    def __init__(self, client_factory: Callable[[str], Any] = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()
        self._cost_types: dict[tuple[str, str], str] = {}

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        source_id = config.get("id", NAME)
        retry = self._retry.begin(config.get("deadline_seconds"))
        redact_sdk_logs(SDK_LOGGERS)
        scope, cost_type = config["scope"].rstrip("/"), config["cost_type"]
        self._claim(scope, str(period), cost_type, source_id)
        client = self._client_factory(config.get("endpoint", "https://management.azure.com"))
        body = _request_body(config, period)
        pages = PageLog(f"{source_id}: Query - Usage", page_limit=PAGE_ROWS)
        rows: list[dict[str, Any]] = []
        url = f"{scope}/providers/Microsoft.CostManagement/query?api-version={API_VERSION}"
        for columns, page_rows in self._pages(client, url, body, pages, source_id, retry):
            rows.extend(_records(columns, page_rows, source_id))
        rounding = Rounding()
        table = _table(rows, rounding, source_id, period, scope)
        details = {
            **table_details(table),
            **pages.as_details(),
            "cost_type": cost_type,
            "scope": scope,
            "rounding": rounding.as_details(),
        }
        yield CollectedSource(source_id, table, content_version(table), details)

    def _claim(self, scope: str, period: str, cost_type: str, source_id: str) -> None:
        """One cost type per scope and period: actual plus amortized would count commitments twice."""
        key = (scope.lower(), period)
        other = self._cost_types.setdefault(key, cost_type)
        if other != cost_type:
            raise InputError(
                f"{source_id}: {scope} is already collected as {other} for {period}; adding {cost_type} "
                "would double-count reservation and savings-plan costs. Choose one cost type per scope."
            )

    def _pages(
        self, client: Any, url: str, body: Mapping[str, Any], pages: PageLog, source_id: str, retry: RetryPolicy
    ) -> Iterator[tuple[list[str], list[list[Any]]]]:
        """POST the query, then POST the same body to each ``nextLink`` until there is none."""
        next_url: str | None = url
        while next_url is not None:
            document = call(retry, partial(_post, client, next_url, body, source_id), f"{NAME}: Query - Usage")
            properties = document.get("properties", {})
            next_url = properties.get("nextLink") or None
            page_rows = properties.get("rows", [])
            if pages.accept(page_rows, next_url):
                yield [c["name"] for c in properties.get("columns", [])], page_rows


def _post(client: Any, url: str, body: Mapping[str, Any], source_id: str) -> Mapping[str, Any]:
    from azure.core.rest import HttpRequest

    response = client.send_request(
        HttpRequest("POST", url, json=body), connection_timeout=CONNECTION_TIMEOUT, read_timeout=READ_TIMEOUT
    )
    if response.status_code == 429 or response.status_code >= 500:
        raise Throttled(response.status_code, retry_wait(response.headers))
    text = response.text()
    if response.status_code != 200:
        try:
            error = json.loads(text).get("error", {})
        except ValueError:
            error = {}
        raise InputError(
            f"{source_id}: Query - Usage answered HTTP {response.status_code}: "
            f"{error.get('code', '')} {error.get('message', '')}".rstrip()
        )
    try:
        usage: Mapping[str, Any] = json.loads(text, parse_float=Decimal)  # never through float: costs stay exact
        return usage
    except ValueError as exc:
        raise InputError(f"{source_id}: Query - Usage answered with invalid JSON: {exc}") from exc


def _request_body(config: Mapping[str, Any], period: Period) -> dict[str, Any]:
    last_day = period.end - timedelta(days=1)
    grouping = [
        {"type": "TagKey", "name": g["tag"]} if "tag" in g else {"type": "Dimension", "name": g["dimension"]}
        for g in config.get("group_by", [])
    ]
    dataset: dict[str, Any] = {
        "granularity": config.get("granularity", "Daily"),
        "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
    }
    if grouping:
        dataset["grouping"] = grouping
    return {
        "type": config["cost_type"],
        "timeframe": "Custom",
        "timePeriod": {
            "from": f"{period.start.isoformat()}T00:00:00+00:00",
            "to": f"{last_day.isoformat()}T23:59:59+00:00",
        },
        "dataset": dataset,
    }


def _records(columns: list[str], rows: list[list[Any]], source_id: str) -> Iterator[dict[str, Any]]:
    index = {name: i for i, name in enumerate(columns)}
    cost_column = next((c for c in ("Cost", "totalCost", "PreTaxCost", "CostUSD") if c in index), None)
    if cost_column is None or "Currency" not in index:
        raise InputError(f"{source_id}: Query - Usage columns {columns} lack a cost or a Currency column")
    for row in rows:
        record: dict[str, Any] = {"cost": row[index[cost_column]], "currency": row[index["Currency"]], "tags": {}}
        if "UsageDate" in index:
            yyyymmdd = int(row[index["UsageDate"]])
            day = date(yyyymmdd // 10000, yyyymmdd // 100 % 100, yyyymmdd % 100)
            record["start"], record["end"] = day, day + timedelta(days=1)
        elif "BillingMonth" in index:
            first = date.fromisoformat(str(row[index["BillingMonth"]])[:10])
            record["start"], record["end"] = first, Period.of(first).end
        if "TagKey" in index and row[index["TagValue"]]:
            record["tags"][row[index["TagKey"]]] = row[index["TagValue"]]
        for dimension, column in DIMENSIONS.items():
            if dimension in index and row[index[dimension]] not in (None, ""):
                value = row[index[dimension]]
                record[column] = CHARGE_TYPE_CATEGORY.get(value, "Adjustment") if dimension == "ChargeType" else value
        yield record


def _table(records: list[dict[str, Any]], rounding: Rounding, source_id: str, period: Period, scope: str) -> pa.Table:
    """Records as the cost table; BillingAccountId is the queried scope, the account the costs roll up to."""

    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), UTC)

    where = f"{source_id}: Query - Usage"
    cost = to_money(
        pa.array([str(r["cost"]) for r in records], pa.string()), column="Cost", where=where, rounding=rounding
    )
    n = len(records)
    columns: dict[str, Any] = {
        "BilledCost": cost,
        "EffectiveCost": cost,
        "BillingCurrency": pa.array([r["currency"] for r in records], pa.string()),
        "BillingAccountId": pa.array([scope] * n, pa.string()),
        "BillingPeriodStart": pa.array([midnight(period.start)] * n, TIMESTAMP),
        "BillingPeriodEnd": pa.array([midnight(period.end)] * n, TIMESTAMP),
        "ChargePeriodStart": pa.array([midnight(r.get("start", period.start)) for r in records], TIMESTAMP),
        "ChargePeriodEnd": pa.array([midnight(r.get("end", period.end)) for r in records], TIMESTAMP),
        "ProviderName": pa.array(["Microsoft"] * n, pa.string()),
        "Tags": pa.array([tags_json(r["tags"]) for r in records], pa.string()),
    }
    for column in sorted(set(DIMENSIONS.values())):
        columns[column] = pa.array([r.get(column) for r in records], pa.string())
    return normalise(pa.table(columns), source_id=source_id, rounding=rounding, where=where)
