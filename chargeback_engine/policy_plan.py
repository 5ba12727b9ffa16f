"""The impact of a policy change, before it is merged: run both versions on the same data.

``plan`` allocates one period's inputs under the base policy and under the head policy,
then compares them: the amount each cost center receives (before, after, delta) and the
amount each rule matched. A rule's matched amount is the cost of the source lines it
decided (stage 0), or for a shared-cost stage the amount it redistributed from its pool.
Amounts are exact; only the Markdown rendering rounds, to the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pluggy

from chargeback_engine import display
from chargeback_engine.engine.result import RunResult
from chargeback_engine.engine.runner import Engine
from chargeback_engine.periods import Period
from chargeback_engine.plugins import get_plugin_manager

PolicySource = str | Path | Sequence[str | Path]

#: How a rule that decides nothing is listed (lines no rule matched go to the unallocated bucket).
NO_RULE = "(no rule matched)"


@dataclass(frozen=True)
class Side:
    """One of the two runs: which policy it used, and its id."""

    policy: str
    version: str
    hash: str
    run_id: str


@dataclass(frozen=True)
class CostCenterChange:
    cost_center: str
    currency: str
    before: Decimal
    after: Decimal

    @property
    def delta(self) -> Decimal:
        return self.after - self.before


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    currency: str
    lines_before: int
    lines_after: int
    before: Decimal
    after: Decimal

    @property
    def delta(self) -> Decimal:
        return self.after - self.before


@dataclass(frozen=True)
class Plan:
    period: Period
    base: Side
    head: Side
    input_rows: int
    cost_centers: tuple[CostCenterChange, ...]  # every cost center either run charged, by id
    rules: tuple[RuleChange, ...]  # only rules whose lines or matched amount changed
    #: Cost-center names from both policies (head wins), shown beside the ids in Markdown.
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.delta for c in self.cost_centers) or bool(self.rules)

    def to_json(self) -> dict[str, Any]:
        """Exact amounts as fixed-point strings (never ``0E-18``), so the document can be checked to the last digit."""
        return {
            "period": str(self.period),
            "base": vars(self.base),
            "head": vars(self.head),
            "input_rows": self.input_rows,
            "changed": self.changed,
            "cost_centers": [
                {
                    "cost_center": c.cost_center,
                    "currency": c.currency,
                    "before": f"{c.before:f}",
                    "after": f"{c.after:f}",
                    "delta": f"{c.delta:f}",
                }
                for c in self.cost_centers
            ],
            "rules": [
                {
                    "rule_id": r.rule_id,
                    "currency": r.currency,
                    "lines_before": r.lines_before,
                    "lines_after": r.lines_after,
                    "before": f"{r.before:f}",
                    "after": f"{r.after:f}",
                    "delta": f"{r.delta:f}",
                }
                for r in self.rules
            ],
        }

    def to_markdown(self) -> str:
        """A pull-request comment: the cost-center table, then the rules that changed."""
        lines = [
            f"### Allocation impact for {self.period}",
            "",
            (
                f"`{self.base.policy}@{self.base.version}` → `{self.head.policy}@{self.head.version}`, "
                f"{self.input_rows:,} line items."
            ),
            "",
        ]
        if not self.changed:
            return "\n".join([*lines, "No cost center and no rule changes.", ""])
        lines += ["| Cost center | Currency | Before | After | Delta |", "|---|---|---:|---:|---:|"]
        for c in self.cost_centers:
            mark = "**" if c.delta else ""
            lines.append(
                f"| {mark}{display.cost_center(c.cost_center, self.names)}{mark} | {c.currency} | {_money(c.before, c.currency)} | "
                f"{_money(c.after, c.currency)} | {_money(c.delta, c.currency, signed=True)} |"
            )
        for currency in sorted({c.currency for c in self.cost_centers}):
            mine = [c for c in self.cost_centers if c.currency == currency]
            before, after = sum((c.before for c in mine), Decimal(0)), sum((c.after for c in mine), Decimal(0))
            lines.append(
                f"| **Total** | {currency} | {_money(before, currency)} | {_money(after, currency)} | "
                f"{_money(after - before, currency, signed=True)} |"
            )
        lines += ["", "#### Rules whose matched amount changed", ""]
        if not self.rules:
            lines.append("None: the same rules match the same lines; only how they split changed.")
        else:
            lines += [
                "| Rule | Currency | Lines before | Lines after | Before | After | Delta |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for r in self.rules:
                lines.append(
                    f"| `{r.rule_id}` | {r.currency} | {r.lines_before:,} | {r.lines_after:,} | "
                    f"{_money(r.before, r.currency)} | {_money(r.after, r.currency)} | "
                    f"{_money(r.delta, r.currency, signed=True)} |"
                )
        lines += ["", "<sub>Amounts rounded to the currency's minor unit; `--format json` has them exact.</sub>", ""]
        return "\n".join(lines)


def plan(
    base: PolicySource,
    head: PolicySource,
    inputs: Iterable[str | Path],
    period: Period | str,
    *,
    plugins: pluggy.PluginManager | None = None,
) -> Plan:
    """Allocate ``inputs`` for ``period`` under ``base`` and under ``head`` and compare them."""
    period = Period.parse(period) if isinstance(period, str) else period
    plugins = get_plugin_manager() if plugins is None else plugins
    inputs = [str(i) for i in inputs]
    before = Engine(_paths(base), plugins).run(inputs, period)
    after = Engine(_paths(head), plugins).run(inputs, period)
    return Plan(
        period=period,
        base=_side(before),
        head=_side(after),
        input_rows=after.input_rows,
        cost_centers=_cost_center_changes(before, after),
        rules=_rule_changes(before, after),
        names={cc.id: cc.name for result in (before, after) for cc in result.policy.cost_centers},
    )


def _paths(source: PolicySource) -> list[str | Path]:
    return [source] if isinstance(source, str | Path) else list(source)


def _side(result: RunResult) -> Side:
    return Side(result.policy.name, result.policy.version, result.policy.content_hash, result.run_id)


def _cost_center_changes(before: RunResult, after: RunResult) -> tuple[CostCenterChange, ...]:
    old = {(cc, cur): amount for cc, cur, amount in before.summary()}
    new = {(cc, cur): amount for cc, cur, amount in after.summary()}
    zero = Decimal(0)
    return tuple(
        CostCenterChange(cc, cur, old.get((cc, cur), zero), new.get((cc, cur), zero))
        for cc, cur in sorted(old.keys() | new.keys())
    )


#: Per rule: the source lines it decided and their cost, or what a stage redistributed.
_MATCHED = """
    SELECT coalesce(rule_id, $no_rule) AS rule_id, currency,
           count(DISTINCT record_id) AS lines, sum(amount) AS amount
    FROM ledger
    WHERE stage = 0 OR cost_center IS DISTINCT FROM from_cost_center  -- a stage's pool row only mirrors its consumers'
    GROUP BY ALL
"""


def _matched(result: RunResult) -> dict[tuple[str, str], tuple[int, Decimal]]:
    rows = result.store.sql(_MATCHED, {"no_rule": NO_RULE}).fetchall()
    return {(rule, currency): (lines, amount or Decimal(0)) for rule, currency, lines, amount in rows}


def _rule_changes(before: RunResult, after: RunResult) -> tuple[RuleChange, ...]:
    old, new = _matched(before), _matched(after)
    none = (0, Decimal(0))
    changes = []
    for rule, currency in sorted(old.keys() | new.keys()):
        (lines_before, amount_before), (lines_after, amount_after) = (
            old.get((rule, currency), none),
            new.get((rule, currency), none),
        )
        if (lines_before, amount_before) != (lines_after, amount_after):
            changes.append(RuleChange(rule, currency, lines_before, lines_after, amount_before, amount_after))
    return tuple(changes)


def _money(amount: Decimal, currency: str, *, signed: bool = False) -> str:
    return display.money(amount, currency, signed=signed, code=False)


__all__ = ["NO_RULE", "CostCenterChange", "Plan", "RuleChange", "Side", "plan"]
