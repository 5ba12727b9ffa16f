"""The kernel's side of a run: decide once per distinct match key, in Python, via plugins.

Nothing here touches a line item. The data plane hands over the distinct keys; the kernel
matches rules (first match by priority), lets the rule's allocator resolve shares, turns
them into exact integer weights and content-derived decision ids, and hands back small
Arrow tables for the data plane to apply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache, cached_property, reduce
from math import gcd
from typing import Any

import duckdb
import pyarrow as pa

from chargeback_engine.allocators._common import fallback_shares
from chargeback_engine.components import (
    Allocator,
    Amortize,
    DirectCostBasis,
    Resolution,
    Shares,
)
from chargeback_engine.engine.dataplane import SPLIT_SCHEMA
from chargeback_engine.errors import Diagnostic, InputError, PolicyError, excerpt
from chargeback_engine.focus import FOCUS_COLUMNS
from chargeback_engine.ledger import DECISION_SCHEMA
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry, reported
from chargeback_engine.policy.match import TAG_PREFIX, Condition, TagCollision
from chargeback_engine.policy.paths import contained_path
from chargeback_engine.policy.model import (
    AllocationSpec,
    Policy,
    Rule,
    SourceLocation,
    Stage,
)

#: Integer weights are reduced to at most this total, which keeps the data plane's
#: HUGEINT intermediates (< total²) far from overflow. Below it, weights are exact.
MAX_TOTAL_WEIGHT = 10**18
TAGS = "Tags"


@dataclass(frozen=True)
class Decision:
    """How the lines of one match key (or one shared stage) are split, and why."""

    decision_id: str
    match_key: str
    rule_id: str | None
    rule_location: str | None
    method: str
    weights: tuple[tuple[str, int], ...]  # (cost center, integer weight), sorted by cost center
    months: int | None  # None: not amortized; 0: over the commitment term
    category: str
    reason: str


def integer_weights(weights: Mapping[str, Decimal]) -> tuple[tuple[str, int], ...]:
    """Exact integer weights proportional to ``weights`` (zeros dropped), sorted by cost center."""
    items = sorted((cc, Decimal(w)) for cc, w in weights.items() if w > 0)
    if not items:
        raise ValueError("weights must not all be zero")
    scale = max(0, *(-w.as_tuple().exponent for _, w in items))  # type: ignore[operator]
    ints = [int(w.scaleb(scale)) for _, w in items]
    divisor = reduce(gcd, ints)
    ints = [i // divisor for i in ints]
    total = sum(ints)
    if total > MAX_TOTAL_WEIGHT:
        ints = [i * MAX_TOTAL_WEIGHT // total for i in ints]
    return tuple((cc, i) for (cc, _), i in zip(items, ints, strict=True) if i > 0)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(_canonical(parts).encode("utf-8")).hexdigest()


class _Context:
    """The :class:`~chargeback_engine.components.AllocationContext` for one key."""

    def __init__(self, kernel: Kernel, key: Mapping[str, str | None]):
        self.key = key
        self.period = kernel.period
        self.policy = kernel.policy
        self._kernel = kernel

    def consumers(self) -> tuple[str, ...]:
        return self._kernel.consumers

    def driver(self, driver_id: str, filter: Condition | None = None) -> Mapping[str, Decimal]:
        return self._kernel.driver_quantities(driver_id, filter)

    def resolve(self, spec: AllocationSpec) -> Resolution:
        return self._kernel.resolve(spec, self)


class Kernel:
    """Rule resolution for one policy and one period."""

    def __init__(self, policy: Policy, registry: Registry, period: Period):
        self.policy = policy
        self.registry = registry
        self.period = period
        self.consumers = tuple(sorted(cc.id for cc in policy.cost_centers if not cc.shared and cc.id != policy.unallocated))
        self._driver_rows = cache(self._load_driver)
        self._tag_keys: frozenset[str] | None = None  # set by key_columns()
        self._direct_memo: dict[tuple[DirectCostBasis, int], Shares] = {}
        self._direct_rows: tuple[int, list[dict[str, Any]]] | None = None

    # -- what the match key is made of -------------------------------------------------
    def allocator(self, method: str) -> Allocator:
        return self.registry.registered("allocators", method).component

    def _spec_fields(self, spec: AllocationSpec) -> set[str]:
        fields = set(self.allocator(spec.method).fields(spec.params))
        for nested in _nested_specs(spec.params):
            fields |= self._spec_fields(nested)
        return fields

    def key_columns(self) -> list[str]:
        """FOCUS columns every rule and method reads, plus ``Tags`` when any tag is read."""
        fields: set[str] = set()
        for rule in self.policy.rules:
            rule_fields = set(rule.when.fields) | self._spec_fields(rule.allocate)
            unknown = sorted(f for f in rule_fields if not f.startswith(TAG_PREFIX) and f not in FOCUS_COLUMNS)
            if unknown:
                raise _policy_error(rule.location, f"rule {rule.id!r} reads unknown FOCUS column(s) {', '.join(unknown)}")
            fields |= rule_fields
        columns = sorted(f for f in fields if not f.startswith(TAG_PREFIX))
        tag_fields = {f[len(TAG_PREFIX):] for f in fields if f.startswith(TAG_PREFIX)}
        self._tag_keys = None if "*" in tag_fields else frozenset(self.policy.tags.normalize_key(k) for k in tag_fields)
        if tag_fields:
            columns.append(TAGS)
        return columns

    # -- deciding ----------------------------------------------------------------------
    def key_of(self, row: Mapping[str, str | None], *, project: bool = True) -> dict[str, str | None]:
        """The match key of a distinct row: its columns and normalised tags.

        Projected (the default), only the tags some rule or method reads are kept, so rows
        that differ only in other tags share one decision.
        """
        key = {c: v for c, v in row.items() if c != TAGS}
        if TAGS in row:
            keep = self._tag_keys if project else None
            key.update({TAG_PREFIX + k: v for k, v in self._normalized_tags(row[TAGS]).items()
                        if keep is None or k in keep})
        return key

    def _normalized_tags(self, text: str | None) -> dict[str, str]:
        if not text:
            return {}
        try:
            tags = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"Tags value {text[:80]!r} is not JSON: {exc}") from None
        if not isinstance(tags, dict):
            raise InputError(f"Tags value {text[:80]!r} is not a JSON object")
        try:
            return self.policy.tags.normalize(tags)
        except TagCollision as exc:
            raise InputError(f"Tags value {text[:80]!r}: {exc}") from None

    def match(self, key: Mapping[str, str | None]) -> Rule | None:
        return next((rule for rule in self.policy.rules if rule.when.matches(key)), None)

    def resolve(self, spec: AllocationSpec, context: _Context) -> Resolution:
        registered = self.registry.registered("allocators", spec.method)
        with reported("allocator", registered, spec.method):
            return registered.component.resolve(spec.params, context)

    def decide(self, key: Mapping[str, str | None]) -> tuple[Rule | None, Resolution]:
        rule = self.match(key)
        if rule is None:
            return None, Shares({self.policy.unallocated: Decimal(1)}, "no rule matched")
        return rule, self.resolve(rule.allocate, _Context(self, key))

    def decide_stage(self, stage: Stage) -> Resolution:
        resolution = self.resolve(stage.allocate, _Context(self, {}))
        if isinstance(resolution, Amortize):
            raise _policy_error(stage.location, f"stage for pool {stage.pool!r} cannot use method {stage.allocate.method!r}")
        return resolution

    # -- drivers and the direct-cost basis --------------------------------------------
    def _load_driver(self, driver_id: str) -> tuple[dict[str, str], ...]:
        driver = next((d for d in self.policy.drivers if d.id == driver_id), None)
        if driver is None:
            raise PolicyError([Diagnostic(self.policy.path, 1, 1, "$.spec.drivers", f"unknown driver {driver_id!r}")])
        if driver.file is None:
            return tuple({"period": p, "cost_center": cc, "quantity": str(q)} for p, cc, q in driver.inline)
        path = contained_path(self.policy.path, driver.file)
        if not path.exists():
            raise InputError(f"{path}: driver {driver_id!r} file not found")
        reader = "read_parquet(?)" if path.suffix == ".parquet" else "read_csv(?, all_varchar = true, header = true)"
        table = duckdb.connect().sql(f"SELECT * FROM {reader}", params=[str(path)]).to_arrow_table()
        missing = {"period", "cost_center", "quantity"} - set(table.column_names)
        if missing:
            raise InputError(f"{path}: driver {driver_id!r} lacks column(s) {', '.join(sorted(missing))}")
        return tuple({k: None if v is None else str(v) for k, v in row.items()} for row in table.to_pylist())

    def driver_quantities(self, driver_id: str, filter: Condition | None) -> dict[str, Decimal]:
        quantities: dict[str, Decimal] = {}
        for row in self._driver_rows(driver_id):
            if row["period"] != str(self.period) or (filter is not None and not filter.matches(row)):
                continue
            try:
                quantity = Decimal(row["quantity"] or "0")
            except ArithmeticError:
                raise InputError(f"driver {driver_id!r}: quantity {excerpt(row['quantity'])} is not a number") from None
            quantities[row["cost_center"]] = quantities.get(row["cost_center"], Decimal(0)) + quantity
        return quantities

    def finalize(self, resolution: Resolution, direct_cost: pa.Table | None) -> Resolution:
        """Replace a :class:`DirectCostBasis` (also inside an amortization) by final shares."""
        if isinstance(resolution, Amortize):
            return replace(resolution, then=self.finalize(resolution.then, direct_cost))
        if not isinstance(resolution, DirectCostBasis):
            return resolution
        assert direct_cost is not None
        return self._direct_cost_shares(resolution, id(direct_cost), direct_cost)

    def _direct_cost_shares(self, basis: DirectCostBasis, table_id: int, direct_cost: pa.Table) -> Shares:
        """Many keys share one basis; compute each (basis, direct-cost table) once."""
        memo_key = (basis, table_id)
        if memo_key in self._direct_memo:
            return self._direct_memo[memo_key]
        if self._direct_rows is None or self._direct_rows[0] != table_id:
            self._direct_rows = (table_id, direct_cost.to_pylist())
        weights: dict[str, Decimal] = {}
        for row in self._direct_rows[1]:
            if basis.filter is not None and not basis.filter.matches(self.key_of(
                    {k: v for k, v in row.items() if k not in ("cost_center", "currency", "amount")}, project=False)):
                continue
            amount = row["amount"] * self.exchange_rate(row["currency"])
            weights[row["cost_center"]] = weights.get(row["cost_center"], Decimal(0)) + amount
        targets = basis.targets or tuple(cc for cc in self.consumers if cc in weights)
        positive = {cc: max(weights.get(cc, Decimal(0)), Decimal(0)) for cc in targets}
        if not any(positive.values()):
            shares = fallback_shares(basis.fallback, basis.targets or self.consumers, _Context(self, {}),
                                     f"{basis.reason}: no direct cost in {self.period}")
        else:
            shares = Shares({cc: w for cc, w in positive.items() if w}, basis.reason)
        self._direct_memo[memo_key] = shares
        return shares

    def exchange_rate(self, currency: str) -> Decimal:
        """Units of the policy currency per unit of ``currency`` on the period's first day:
        the latest of the policy's dated ``exchange_rates`` on or before it. Direct-cost
        weights are compared in the policy currency; the ledger keeps each line's own."""
        if currency == self.policy.currency:
            return Decimal(1)
        rate = self._rates_in_effect.get(currency)
        if rate is None:
            raise InputError(f"the inputs hold {currency}, but the policy has no exchange rate for {currency} "
                             f"dated on or before {self.period.start} (spec.exchange_rates)")
        return rate

    @cached_property
    def _rates_in_effect(self) -> dict[str, Decimal]:
        """Per currency, the latest rate dated on or before the period's first day (read once:
        every direct-cost row asks)."""
        start = str(self.period.start)
        dated = sorted((r["currency"], str(r["date"]), Decimal(str(r["rate"])))
                       for r in self.policy.document.get("spec", {}).get("exchange_rates", [])
                       if str(r["date"]) <= start)
        return {currency: rate for currency, _, rate in dated}  # later dates overwrite earlier ones

    @staticmethod
    def filter_columns(resolutions: Iterable[Resolution]) -> list[str]:
        fields: set[str] = set()
        for r in resolutions:
            while isinstance(r, Amortize):
                r = r.then
            if isinstance(r, DirectCostBasis) and r.filter is not None:
                fields |= set(r.filter.fields)
        columns = sorted(f for f in fields if not f.startswith(TAG_PREFIX))
        return columns + ([TAGS] if any(f.startswith(TAG_PREFIX) for f in fields) else [])

    # -- decisions as data -------------------------------------------------------------
    def decision(self, match_key: Mapping[str, Any], rule: Rule | Stage | None, rule_id: str | None,
                 method: str, resolution: Resolution) -> Decision:
        months: int | None = None
        shares = resolution
        if isinstance(resolution, Amortize):
            months = resolution.months or 0
            shares = resolution.then
        assert isinstance(shares, Shares), "finalize() before decision()"
        weights = integer_weights(shares.weights)
        category = "unallocated" if rule is None else "amortized" if months is not None else "direct"
        key_text = _canonical(match_key)
        location = str(rule.location) if rule is not None else None
        # Not the location: where the policy was loaded from must not change the ids (the
        # content hash and the rule id already name the rule, and its line).
        content = "\x1f".join(map(str, (self.policy.content_hash, key_text, rule_id, method,
                                          weights, months, resolution.reason)))
        decision_id = "d-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:24]
        return Decision(decision_id, key_text, rule_id, location, method, weights, months, category, resolution.reason)

    def decision_table(self, decisions: Sequence[Decision]) -> pa.Table:
        rows = [
            {
                "decision_id": d.decision_id,
                "match_key": d.match_key,
                "rule_id": d.rule_id,
                "rule_location": d.rule_location,
                "policy_version": self.policy.version,
                "policy_hash": self.policy.content_hash,
                "method": d.method,
                "shares": _canonical({cc: str(w) for cc, w in d.weights}),
                "months": d.months,
                "reason": d.reason,
            }
            for d in sorted(decisions, key=lambda d: d.decision_id)
        ]
        return pa.Table.from_pylist(rows, schema=DECISION_SCHEMA)


def split_table(decisions: Iterable[Decision], stage_rule: bool = False) -> pa.Table:
    rows = [
        {"decision_id": d.decision_id, "cost_center": cc, "weight": Decimal(w), "position": i,
         "months": d.months, "rule_id": d.rule_id, "method": d.method,
         "category": "shared" if stage_rule else d.category}
        for d in decisions
        for i, (cc, w) in enumerate(d.weights)
    ]
    return pa.Table.from_pylist(rows, schema=SPLIT_SCHEMA)


def _policy_error(location: SourceLocation, message: str) -> PolicyError:
    return PolicyError([Diagnostic(location.file, location.line, location.column, "$", message)])


def _nested_specs(params: Any) -> Iterable[AllocationSpec]:
    """Every nested ``allocate:`` block (a mapping with a ``method``) inside parameters."""
    values = params.values() if isinstance(params, Mapping) else params if isinstance(params, list) else ()
    for value in values:
        if isinstance(value, Mapping) and "method" in value:
            yield AllocationSpec.from_document(value)
        elif isinstance(value, Mapping | list):
            yield from _nested_specs(value)
