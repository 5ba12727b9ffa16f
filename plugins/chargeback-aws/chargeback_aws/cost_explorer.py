"""``aws-cost-explorer``: daily or monthly costs from Cost Explorer ``GetCostAndUsage``.

Traps handled here: botocore has no paginator for this operation (we follow
``NextPageToken`` ourselves), GroupBy allows two dimensions at most, tag groups come back
as ``key$value`` with an empty value meaning "untagged", amounts are strings (kept exact),
and the ``Estimated`` flag of unfinished periods is carried into the run manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import pyarrow as pa

from chargeback_aws.clients import SDK_LOGGERS, ClientFactory, call, default_client, max_attempts
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

NAME = "aws-cost-explorer"

#: GroupBy dimensions we accept, and the FOCUS column each fills.
DIMENSIONS = {
    "SERVICE": "ServiceName",
    "LINKED_ACCOUNT": "SubAccountId",
    "REGION": "RegionId",
    "RECORD_TYPE": "ChargeCategory",
    "USAGE_TYPE": "ChargeDescription",
}

#: Cost Explorer RECORD_TYPE values, as FOCUS ChargeCategory.
RECORD_TYPE_CATEGORY = {
    "Usage": "Usage",
    "DiscountedUsage": "Usage",
    "SavingsPlanCoveredUsage": "Usage",
    "Tax": "Tax",
    "Credit": "Credit",
    "Refund": "Credit",
    "SavingsPlanNegation": "Credit",
    "RIFee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
    "Fee": "Purchase",
    "Support": "Purchase",
}

CONFIG_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "description": "Costs from AWS Cost Explorer GetCostAndUsage.",
    "additionalProperties": False,
    "properties": {
        "deadline_seconds": DEADLINE_SCHEMA,
        "granularity": {"enum": ["DAILY", "MONTHLY"], "default": "DAILY"},
        "group_by": {
            "type": "array",
            "maxItems": 2,
            "description": "At most two groupings, as Cost Explorer allows.",
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
        "effective_cost_metric": {"enum": ["AmortizedCost", "NetAmortizedCost"], "default": "AmortizedCost"},
        "billed_cost_metric": {"enum": ["UnblendedCost", "NetUnblendedCost"], "default": "UnblendedCost"},
        "filter": {"type": "object", "description": "A Cost Explorer Expression, passed through unchanged."},
        "region": {"type": "string", "default": "us-east-1"},
    },
}


class CostExplorerCollector:
    name = NAME
    config_schema = CONFIG_SCHEMA

    def __init__(self, client_factory: ClientFactory = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        source_id = config.get("id", NAME)
        retry = self._retry.begin(config.get("deadline_seconds"), max_attempts=max_attempts())
        redact_sdk_logs(SDK_LOGGERS)
        region = config.get("region", "us-east-1")
        client = self._client_factory("ce", region)
        sts = self._client_factory("sts", region)
        account = call(retry, lambda: sts.get_caller_identity()["Account"], f"{NAME}: GetCallerIdentity")
        groups = [_group_definition(g) for g in config.get("group_by", [])]
        request: dict[str, Any] = {
            "TimePeriod": {"Start": period.start.isoformat(), "End": period.end.isoformat()},
            "Granularity": config.get("granularity", "DAILY"),
            "Metrics": [
                config.get("billed_cost_metric", "UnblendedCost"),
                config.get("effective_cost_metric", "AmortizedCost"),
            ],
        }
        if groups:
            request["GroupBy"] = groups
        if "filter" in config:
            request["Filter"] = config["filter"]
        pages = PageLog(f"{source_id}: GetCostAndUsage")
        rows: list[dict[str, Any]] = []
        estimated: set[str] = set()
        account_names: dict[str, str] = {}
        for response in self._pages(client, request, pages, retry):
            for attribute in response.get("DimensionValueAttributes", []):
                if "description" in attribute.get("Attributes", {}):
                    account_names[attribute["Value"]] = attribute["Attributes"]["description"]
            for result in response.get("ResultsByTime", []):
                if result.get("Estimated"):
                    estimated.add(result["TimePeriod"]["Start"])
                rows.extend(_rows(result, groups, request["Metrics"], source_id))
        if estimated:
            log.warning("aws.cost_explorer.estimated", source=source_id, periods=len(estimated))
        rounding = Rounding()
        table = _table(rows, account_names, request["Metrics"], rounding, source_id, period, account)
        details = {
            **table_details(table),
            **pages.as_details(),
            "estimated": sorted(estimated),
            "rounding": rounding.as_details(),
        }
        yield CollectedSource(source_id, table, content_version(table), details)

    def _pages(
        self, client: Any, request: dict[str, Any], pages: PageLog, retry: RetryPolicy
    ) -> Iterator[Mapping[str, Any]]:
        """Follow NextPageToken until it is absent; botocore offers no paginator for this call."""
        token: str | None = None
        while True:
            request_page = dict(request, NextPageToken=token) if token else request
            response = call(retry, partial(client.get_cost_and_usage, **request_page), f"{NAME}: GetCostAndUsage")
            token = response.get("NextPageToken") or None
            if pages.accept(response.get("ResultsByTime", []), token):
                yield response
            if token is None:
                return


def _group_definition(group: Mapping[str, str]) -> dict[str, str]:
    if "tag" in group:
        return {"Type": "TAG", "Key": group["tag"]}
    return {"Type": "DIMENSION", "Key": group["dimension"]}


def _rows(
    result: Mapping[str, Any], groups: list[dict[str, str]], metrics: list[str], source_id: str
) -> Iterator[dict[str, Any]]:
    start, end = result["TimePeriod"]["Start"], result["TimePeriod"]["End"]
    entries = result.get("Groups") or ([{"Keys": [], "Metrics": result["Total"]}] if result.get("Total") else [])
    for entry in entries:
        row: dict[str, Any] = {"start": start, "end": end, "tags": {}}
        for definition, key in zip(groups, entry["Keys"], strict=True):
            if definition["Type"] == "TAG":
                tag_key, _, value = key.partition("$")
                if value:  # "team$" is the group of resources without the tag
                    row["tags"][tag_key] = value
            elif definition["Key"] == "RECORD_TYPE":
                row["ChargeCategory"] = RECORD_TYPE_CATEGORY.get(key, "Adjustment")
                row["ChargeDescription"] = key
            else:
                row[DIMENSIONS[definition["Key"]]] = key
        amounts = [entry["Metrics"][m] for m in metrics]
        units = {a["Unit"] for a in amounts}
        if len(units) != 1:
            raise InputError(f"{source_id}: {start}: metrics {metrics} come in different units {sorted(units)}")
        row["BillingCurrency"] = units.pop()
        row["BilledCost"], row["EffectiveCost"] = (a["Amount"] for a in amounts)
        yield row


def _table(
    rows: list[dict[str, Any]],
    account_names: Mapping[str, str],
    metrics: list[str],
    rounding: Rounding,
    source_id: str,
    period: Period,
    account: str,
) -> pa.Table:
    """Rows as the cost table; BillingAccountId is the account whose Cost Explorer was asked."""

    def midnight(day: str) -> datetime:
        return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)

    def text(column: str) -> pa.Array:
        return pa.array([r.get(column) for r in rows], pa.string())

    where = f"{source_id}: GetCostAndUsage"
    columns: dict[str, Any] = {
        "BilledCost": to_money(
            pa.array([r["BilledCost"] for r in rows], pa.string()), column=metrics[0], where=where, rounding=rounding
        ),
        "EffectiveCost": to_money(
            pa.array([r["EffectiveCost"] for r in rows], pa.string()), column=metrics[1], where=where, rounding=rounding
        ),
        "BillingCurrency": text("BillingCurrency"),
        "BillingAccountId": pa.array([account] * len(rows), pa.string()),
        "BillingPeriodStart": pa.array([midnight(period.start.isoformat())] * len(rows), TIMESTAMP),
        "BillingPeriodEnd": pa.array([midnight(period.end.isoformat())] * len(rows), TIMESTAMP),
        "ChargePeriodStart": pa.array([midnight(r["start"]) for r in rows], TIMESTAMP),
        "ChargePeriodEnd": pa.array([midnight(r["end"]) for r in rows], TIMESTAMP),
        "ProviderName": pa.array(["AWS"] * len(rows), pa.string()),
        "SubAccountName": pa.array([account_names.get(r.get("SubAccountId", "")) for r in rows], pa.string()),
        "Tags": pa.array([tags_json(r["tags"]) for r in rows], pa.string()),
    }
    for column in ("ServiceName", "SubAccountId", "RegionId", "ChargeCategory", "ChargeDescription"):
        columns[column] = text(column)
    return normalise(pa.table(columns), source_id=source_id, rounding=rounding, where=where)
