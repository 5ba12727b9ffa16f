"""Finance settings: the chart of accounts and the rules a controller decides, not the policy.

The allocation policy says who owns what; these settings say how ownership is booked:
which accounts a recharge hits, which entity pays the cloud bill, which markup applies
between entities, and how disputes are routed. They load from a small YAML file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chargeback_engine.finance.finance_errors import SettingsError
from chargeback_engine.policy.yaml import JsonPath, YamlDocument, load_yaml_document


@dataclass(frozen=True)
class FinanceSettings:
    payer_entity: str | None = None
    default_expense_account: str = "6420"
    recharge_account: str = "6990"  # contra-expense of the cloud cost pool in the payer entity
    intercompany_receivable: str = "1410"
    intercompany_payable: str = "2410"
    markup_account: str = "4910"
    pool_cost_center: str = "CLOUD-POOL"
    #: (payer entity, consumer entity) -> markup rate, e.g. 0.05 for 5%.
    markups: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)
    compliance_threshold: Decimal = Decimal("0.90")
    tagged_methods: tuple[str, ...] = ("tag",)
    sla_days: int = 5
    dispute_assignees: Mapping[str, str] = field(default_factory=dict)
    default_assignee: str = "finops"
    escalation_assignee: str = "finance-controller"
    journal_source: str = "Chargeback"
    journal_category: str = "Cloud Recharge"
    ledger_id: str = "1"
    ledger_name: str = "Primary"

    def markup_rate(self, payer: str | None, consumer: str | None) -> Decimal:
        if payer is None or consumer is None:
            return Decimal(0)
        return self.markups.get((payer, consumer), Decimal(0))

    def assignee_for(self, dispute_type: str) -> str:
        return self.dispute_assignees.get(dispute_type, self.default_assignee)


_SIMPLE_KEYS = {
    "payer_entity",
    "default_expense_account",
    "recharge_account",
    "intercompany_receivable",
    "intercompany_payable",
    "markup_account",
    "pool_cost_center",
    "default_assignee",
    "escalation_assignee",
    "journal_source",
    "journal_category",
    "ledger_id",
    "ledger_name",
}


def settings_from_document(document: YamlDocument) -> FinanceSettings:
    """Build settings from the read settings file; unknown keys are errors so typos never pass
    silently, and every error names the ``file:line:col`` of the value at fault."""

    def error(path: JsonPath, message: str, *, key: bool = False) -> SettingsError:
        return SettingsError(str(document.diagnostic(path, message, key=key)))

    def decimal(path: JsonPath, value: Any) -> Decimal:
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise error(path, f"{value!r} is not a decimal number") from None

    doc = {} if document.data is None else document.data
    if not isinstance(doc, Mapping):
        raise error((), "the settings file must be a mapping")
    known = _SIMPLE_KEYS | {"markups", "compliance_threshold", "tagged_methods", "sla_days", "dispute_assignees"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise error((unknown[0],), f"unknown setting (known: {', '.join(sorted(known))})", key=True)
    values: dict[str, Any] = {k: str(v) for k, v in doc.items() if k in _SIMPLE_KEYS and v is not None}
    items = doc.get("markups") or []
    if not isinstance(items, list):
        raise error(("markups",), "must be a list of {from, to, rate}")
    markups = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or {"from", "to", "rate"} - set(item):
            raise error(("markups", i), "needs 'from', 'to' and 'rate'")
        markups[(str(item["from"]), str(item["to"]))] = decimal(("markups", i, "rate"), item["rate"])
    values["markups"] = markups
    if "compliance_threshold" in doc:
        values["compliance_threshold"] = decimal(("compliance_threshold",), doc["compliance_threshold"])
    if "tagged_methods" in doc:
        if not isinstance(doc["tagged_methods"], list):
            raise error(("tagged_methods",), "must be a list of allocation methods")
        values["tagged_methods"] = tuple(str(m) for m in doc["tagged_methods"])
    if "sla_days" in doc:
        try:
            values["sla_days"] = int(str(doc["sla_days"]))
        except ValueError:
            raise error(("sla_days",), f"{doc['sla_days']!r} is not a whole number of days") from None
    if "dispute_assignees" in doc:
        if not isinstance(doc["dispute_assignees"], Mapping):
            raise error(("dispute_assignees",), "must be a mapping of dispute type to assignee")
        values["dispute_assignees"] = {str(k): str(v) for k, v in doc["dispute_assignees"].items()}
    return FinanceSettings(**values)


def load_settings(path: str | Path | None) -> FinanceSettings:
    """The settings file at ``path``, read with the hardened YAML reader; the defaults without one."""
    if path is None:
        return FinanceSettings()
    return settings_from_document(load_yaml_document(path))
