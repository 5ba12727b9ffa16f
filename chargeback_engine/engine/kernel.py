"""The kernel's side of a run: the policy compiled to the data plane, resolved once per outcome.

Nothing here touches a line item. The rules' ``when:`` conditions become one SQL
expression, which the data plane evaluates over the distinct match keys to pick the
first matching rule of every key at once. Each rule's allocator then runs once per
distinct *outcome*: per rule for constant shares, drivers, the direct-cost basis and
amortization; per distinct value of the fields it reads for a tag target or a tier. An
allocator without a compiled form (a third party's, unless it declares ``compiled``) is
asked once per match key, as it always was. The kernel turns each result into exact
integer weights and a content-derived decision, and hands the plane small Arrow tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache, cached_property, reduce
from math import gcd
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.canonical import key_json, sha256_hex
from chargeback_engine.components import (
    Allocator,
    Amortize,
    DirectCostBasis,
    Resolution,
    Shares,
    fallback_shares,
)
from chargeback_engine.engine.dataplane import SPLIT_SCHEMA, DataPlane
from chargeback_engine.engine.tag_columns import ALL_TAGS, TagColumns
from chargeback_engine.errors import Diagnostic, InputError, PolicyError
from chargeback_engine.focus import FOCUS_COLUMNS
from chargeback_engine.ledger import DECISION_RECORD_SCHEMA
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registered, Registry, plugin_fault, reported
from chargeback_engine.policy.checks import driver_rows, row_quantity
from chargeback_engine.policy.match import TAG_PREFIX, Condition, compile_condition
from chargeback_engine.policy.policy_model import (
    AllocationSpec,
    Policy,
    Rule,
    SourceLocation,
    Stage,
)
from chargeback_engine.policy.sql import ColumnOf, first_match_sql
from chargeback_engine.sql_common import Dialect

#: Integer weights are reduced to at most this total, which keeps the data plane's
#: HUGEINT intermediates (< total²) far from overflow. Below it, weights are exact.
MAX_TOTAL_WEIGHT = 10**18


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
    scale = max(0, *(-int(w.as_tuple().exponent) for _, w in items))
    ints = [int(w.scaleb(scale)) for _, w in items]
    divisor = reduce(gcd, ints)
    ints = [i // divisor for i in ints]
    total = sum(ints)
    if total > MAX_TOTAL_WEIGHT:
        ints = [i * MAX_TOTAL_WEIGHT // total for i in ints]
    return tuple((cc, i) for (cc, _), i in zip(items, ints, strict=True) if i > 0)


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
        self.consumers = tuple(
            sorted(cc.id for cc in policy.cost_centers if not cc.shared and cc.id != policy.unallocated)
        )
        self._driver_rows = cache(self._load_driver)
        # The direct-cost table the memo was computed from (held, so its identity cannot be
        # reused by a later table), its rows, and the shares of each basis.
        self._direct: tuple[pa.Table, list[dict[str, Any]], dict[DirectCostBasis, Shares]] | None = None

    # -- what the match key is made of -------------------------------------------------
    def allocator(self, method: str) -> Allocator:
        allocator: Allocator = self.registry.registered("allocators", method).component
        return allocator

    def _spec_fields(self, spec: AllocationSpec) -> set[str]:
        """The fields a rule's allocation reads, nested blocks included, tag keys normalised."""
        registered = self.registry.registered("allocators", spec.method)
        with reported("allocator", registered, spec.method):
            read = list(registered.component.fields(spec.params))
        if not all(isinstance(f, str) for f in read):
            raise plugin_fault("allocator", registered, spec.method, f"returned fields {read!r}, not column names")
        fields = {self._field(f) for f in read}
        for nested in _nested_specs(spec.params):
            fields |= self._spec_fields(nested)
        return fields

    def _field(self, name: str) -> str:
        if name.startswith(TAG_PREFIX) and name != ALL_TAGS:
            return TAG_PREFIX + self.policy.tags.normalize_key(name[len(TAG_PREFIX) :])
        return name

    def _compiled(self, spec: AllocationSpec) -> bool:
        """Does the allocation depend on nothing but its fields, nested blocks included?"""
        return bool(getattr(self.allocator(spec.method), "compiled", False)) and all(
            self._compiled(nested) for nested in _nested_specs(spec.params)
        )

    @cached_property
    def key_fields(self) -> tuple[str, ...]:
        """The match key: FOCUS columns and ``tags.<key>`` that any rule or method reads."""
        fields: set[str] = set()
        for rule in self.policy.rules:
            rule_fields = set(rule.when.fields) | self._spec_fields(rule.allocate)
            unknown = sorted(f for f in rule_fields if not f.startswith(TAG_PREFIX) and f not in FOCUS_COLUMNS)
            if unknown:
                raise _policy_error(
                    rule.location, f"rule {rule.id!r} reads unknown FOCUS column(s) {', '.join(unknown)}"
                )
            fields |= rule_fields
        return tuple(sorted(fields))

    @cached_property
    def tag_fields(self) -> frozenset[str]:
        """Every tag the run reads: the match key's, and those of ``filter:`` conditions
        (the direct-cost basis filters the period's lines by them)."""
        fields = {f for f in self.key_fields if f.startswith(TAG_PREFIX)}
        for spec in [*(r.allocate for r in self.policy.rules), *(s.allocate for s in self.policy.stages)]:
            for condition in _filters(spec.params, self.policy):
                fields |= {f for f in condition.fields if f.startswith(TAG_PREFIX)}
        return frozenset(fields)

    def first_rule_sql(self, column: ColumnOf, dialect: Dialect) -> str:
        """SQL for the index of the first rule (by priority) whose ``when:`` holds, else NULL."""
        return first_match_sql((rule.when for rule in self.policy.rules), column, dialect)

    # -- resolving ---------------------------------------------------------------------
    def outcomes(self, keys: pa.Table) -> tuple[list[Outcome], np.ndarray]:
        """The distinct outcomes of ``keys`` (the match key's fields plus ``rule``, the index
        of each key's first matching rule), and for every key the index of its outcome.

        A compiled rule is resolved once per distinct value of the fields its allocation
        reads (once in all when it reads none); any other once per key. Keys that no rule
        matches share one outcome: the unallocated bucket.
        """
        rules = pc.fill_null(keys["rule"], -1).to_numpy(zero_copy_only=False)
        outcome_of_key = np.zeros(keys.num_rows, np.int64)
        outcomes: list[Outcome] = []
        for index in np.unique(rules):
            rows = np.flatnonzero(rules == index)
            rule = self.policy.rules[index] if index >= 0 else None
            if rule is None:
                fields: list[str] = []
            elif self._compiled(rule.allocate):
                fields = sorted(self._spec_fields(rule.allocate))
            else:
                fields = list(self.key_fields)
            firsts, inverse = _distinct_rows(keys.select(fields).take(pa.array(rows)) if fields else None, len(rows))
            outcome_of_key[rows] = len(outcomes) + inverse
            for values in keys.select(fields).take(pa.array(rows[firsts])).to_pylist() if fields else [{}]:
                outcomes.append(Outcome(values, rule, self._resolve_rule(rule, values)))
        return outcomes, outcome_of_key

    def _resolve_rule(self, rule: Rule | None, key: Mapping[str, str | None]) -> Resolution:
        if rule is None:
            return Shares({self.policy.unallocated: Decimal(1)}, "no rule matched")
        return self.resolve(rule.allocate, _Context(self, _expanded(key)))

    def resolve(self, spec: AllocationSpec, context: _Context) -> Resolution:
        registered: Registered[Allocator] = self.registry.registered("allocators", spec.method)
        with reported("allocator", registered, spec.method):
            resolution = registered.component.resolve(spec.params, context)
        inner: object = resolution  # a plugin's return, whatever its annotations promise
        while isinstance(inner, Amortize):
            inner = inner.then
        weights: object = inner.weights if isinstance(inner, Shares) else None
        if not isinstance(inner, Shares | DirectCostBasis) or (
            isinstance(inner, Shares) and not isinstance(weights, Mapping)
        ):
            what = (
                f"Shares whose weights are a {type(weights).__name__}, not a mapping"
                if isinstance(inner, Shares)
                else f"a {type(inner).__name__}, not Shares, DirectCostBasis or Amortize"
            )
            raise plugin_fault("allocator", registered, spec.method, f"returned {what}")
        return resolution

    def resolve_stage(self, stage: Stage) -> Resolution:
        resolution = self.resolve(stage.allocate, _Context(self, {}))
        if isinstance(resolution, Amortize):
            raise _policy_error(
                stage.location, f"stage for pool {stage.pool!r} cannot use method {stage.allocate.method!r}"
            )
        return resolution

    # -- the phases of a run -------------------------------------------------------------
    def allocate(self, plane: DataPlane, layout: TagColumns, step: Callable[[str], None]) -> list[Decision]:
        """Every phase of the allocation, in order: *direct* (outcomes with final shares),
        *deferred* (outcomes split by the period's direct cost, once that is known), then
        each shared *stage*. Returns every decision made."""
        step("decide")
        column_of = {f: layout.columns.get(f, f) for f in self.key_fields}
        keys = plane.choose(
            [column_of[f] for f in self.key_fields],
            self.first_rule_sql(lambda f: plane.quote(column_of[f]), plane.dialect),
        )
        keys = keys.rename_columns([*self.key_fields, "rule"])
        outcomes, outcome_of_key = self.outcomes(keys)
        deferred = np.array([_is_deferred(o.resolution) for o in outcomes], bool)
        assignments = keys.drop_columns(["rule"]).rename_columns([column_of[f] for f in self.key_fields])

        def apply(phase: np.ndarray, direct_cost: pa.Table | None) -> list[Decision]:
            made = {
                i: self.record_decision(
                    o.key,
                    o.rule,
                    o.rule.id if o.rule else None,
                    o.rule.allocate.method if o.rule else "unallocated",
                    self.resolve_deferred(o.resolution, direct_cost),
                )
                for i, o in enumerate(outcomes)
                if phase[i]
            }
            if made:
                ids = np.array([made[i].decision_id if i in made else "" for i in range(len(outcomes))], object)
                mine = phase[outcome_of_key]
                plane.allocate(
                    assignments.filter(pa.array(mine)).append_column(
                        "decision_id", pa.array(ids[outcome_of_key[mine]], pa.string())
                    ),
                    split_table(made.values()),
                )
            return list(made.values())

        step("allocate")
        decisions = apply(~deferred, None)
        if deferred.any():
            basis = [o.resolution for o, d in zip(outcomes, deferred, strict=True) if d]
            decisions += apply(deferred, self.direct_cost(plane, layout, basis))
        for index, stage in enumerate(self.policy.stages, start=1):
            step(f"stage {index}")
            resolution = self.resolve_stage(stage)
            direct = self.direct_cost(plane, layout, [resolution]) if _is_deferred(resolution) else None
            decision = self.record_decision(
                {"stage": index, "pool": stage.pool},
                stage,
                f"stage-{index}-{stage.pool}".lower(),
                stage.allocate.method,
                self.resolve_deferred(resolution, direct),
            )
            plane.redistribute(index, stage.pool, split_table([decision], stage_rule=True))
            decisions.append(decision)
        decisions += self._empty_pools(plane, len(self.policy.stages) + 1)
        return decisions

    def _empty_pools(self, plane: DataPlane, stage: int) -> list[Decision]:
        """No money stays in a shared pool after the last stage (it reached the pool after
        its stage ran, or the pool has none): an error naming each pool and amount, or, with
        ``spec.pool_leftovers: unallocated``, one more stage to the unallocated bucket."""
        pools = sorted({cc.id for cc in self.policy.cost_centers if cc.shared} | {s.pool for s in self.policy.stages})
        left = plane.pool_balances(pools).to_pylist() if pools else []
        if not left:
            return []
        if self.policy.document.get("spec", {}).get("pool_leftovers", "error") != "unallocated":
            held = "; ".join(
                f"shared pool {r['cost_center']} still holds {r['amount'].normalize():f} {r['currency']}"
                for r in left[:5]
            )
            raise InputError(
                f"{self.policy.path or self.policy.name}: {held} after the last stage; give it a stage that "
                "runs after the money arrives, or set spec.pool_leftovers: unallocated"
            )
        made = []
        for offset, pool in enumerate(sorted({r["cost_center"] for r in left})):
            reason = f"left in shared pool {pool} after the last stage (pool_leftovers: unallocated)"
            decision = self.record_decision(
                {"pool": pool, "stage": stage + offset},
                None,
                f"pool-leftovers-{pool}".lower(),
                "unallocated",
                Shares({self.policy.unallocated: Decimal(1)}, reason),
            )
            plane.redistribute(stage + offset, pool, split_table([decision], stage_rule=True))
            made.append(decision)
        return made

    def direct_cost(self, plane: DataPlane, layout: TagColumns, resolutions: Iterable[Resolution]) -> pa.Table:
        """The period's direct cost per cost center and currency, with the columns the
        bases' filters read, named by their fields."""
        fields = self.filter_fields(resolutions)
        table = plane.direct_cost([layout.columns.get(f, f) for f in fields])
        return table.rename_columns(["cost_center", "currency", *fields, "amount"])

    # -- drivers and the direct-cost basis --------------------------------------------
    def _load_driver(self, driver_id: str) -> tuple[dict[str, str | None], ...]:
        driver = next((d for d in self.policy.drivers if d.id == driver_id), None)
        if driver is None:
            raise PolicyError([Diagnostic(self.policy.path, 1, 1, "$.spec.drivers", f"unknown driver {driver_id!r}")])
        return tuple(driver_rows(driver, self.policy.path))

    def driver_quantities(self, driver_id: str, filter: Condition | None) -> dict[str, Decimal]:
        quantities: dict[str, Decimal] = {}
        for number, row in enumerate(self._driver_rows(driver_id), start=1):
            if row["period"] != str(self.period) or (filter is not None and not filter.matches(row)):
                continue
            quantity, cost_center = row_quantity(driver_id, number, row), row["cost_center"]
            if not cost_center:
                raise InputError(
                    f"driver {driver_id!r}: data row {number}: the cost_center cell is empty; name a declared cost center"
                )
            quantities[cost_center] = quantities.get(cost_center, Decimal(0)) + quantity
        return quantities

    def resolve_deferred(self, resolution: Resolution, direct_cost: pa.Table | None) -> Resolution:
        """Replace a :class:`DirectCostBasis` (also inside an amortization) by final shares."""
        if isinstance(resolution, Amortize):
            return replace(resolution, then=self.resolve_deferred(resolution.then, direct_cost))
        if not isinstance(resolution, DirectCostBasis):
            return resolution
        assert direct_cost is not None
        return self._direct_cost_shares(resolution, direct_cost)

    def _direct_cost_shares(self, basis: DirectCostBasis, direct_cost: pa.Table) -> Shares:
        """Many outcomes share one basis; compute each (basis, direct-cost table) once."""
        if self._direct is None or self._direct[0] is not direct_cost:
            self._direct = (direct_cost, direct_cost.to_pylist(), {})
        _, rows, memo = self._direct
        if basis in memo:
            return memo[basis]
        weights: dict[str, Decimal] = {}
        for row in rows:
            if basis.filter is not None and not basis.filter.matches(row):
                continue
            amount = row["amount"] * self.exchange_rate(row["currency"])
            weights[row["cost_center"]] = weights.get(row["cost_center"], Decimal(0)) + amount
        targets = basis.targets or tuple(cc for cc in self.consumers if cc in weights)
        positive = {cc: max(weights.get(cc, Decimal(0)), Decimal(0)) for cc in targets}
        if not any(positive.values()):
            shares = fallback_shares(
                basis.fallback,
                basis.targets or self.consumers,
                _Context(self, {}),
                f"{basis.reason}: no direct cost in {self.period}",
            )
        else:
            shares = Shares({cc: w for cc, w in positive.items() if w}, basis.reason)
        memo[basis] = shares
        return shares

    def exchange_rate(self, currency: str) -> Decimal:
        """Units of the policy currency per unit of ``currency`` on the period's first day:
        the latest of the policy's dated ``exchange_rates`` on or before it. Direct-cost
        weights are compared in the policy currency; the ledger keeps each line's own."""
        if currency == self.policy.currency:
            return Decimal(1)
        rate = self._rates_in_effect.get(currency)
        if rate is None:
            raise InputError(
                f"the inputs hold {currency}, but the policy has no exchange rate for {currency} "
                f"dated on or before {self.period.start} (spec.exchange_rates)"
            )
        return rate

    @cached_property
    def _rates_in_effect(self) -> dict[str, Decimal]:
        """Per currency, the latest rate dated on or before the period's first day (read once:
        every direct-cost row asks)."""
        start = str(self.period.start)
        dated = sorted(
            (r["currency"], str(r["date"]), Decimal(str(r["rate"])))
            for r in self.policy.document.get("spec", {}).get("exchange_rates", [])
            if str(r["date"]) <= start
        )
        return {currency: rate for currency, _, rate in dated}  # later dates overwrite earlier ones

    @staticmethod
    def filter_fields(resolutions: Iterable[Resolution]) -> list[str]:
        """The fields the direct-cost bases' filters read, sorted."""
        fields: set[str] = set()
        for r in resolutions:
            while isinstance(r, Amortize):
                r = r.then
            if isinstance(r, DirectCostBasis) and r.filter is not None:
                fields |= set(r.filter.fields)
        return sorted(fields)

    # -- decisions as data -------------------------------------------------------------
    def record_decision(
        self,
        match_key: Mapping[str, Any],
        rule: Rule | Stage | None,
        rule_id: str | None,
        method: str,
        resolution: Resolution,
    ) -> Decision:
        months: int | None = None
        shares = resolution
        if isinstance(resolution, Amortize):
            months = resolution.months or 0
            shares = resolution.then
        assert isinstance(shares, Shares), "resolve_deferred() before record_decision()"
        weights = integer_weights(self._checked(shares, rule_id, method))
        category = "unallocated" if rule is None else "amortized" if months is not None else "direct"
        key_text = key_json(match_key)
        location = str(rule.location) if rule is not None else None
        # Not the location: where the policy was loaded from must not change the ids (the
        # content hash and the rule id already name the rule, and its line).
        content = "\x1f".join(
            map(str, (self.policy.content_hash, key_text, rule_id, method, weights, months, resolution.reason))
        )
        decision_id = "d-" + sha256_hex(content)[:24]
        return Decision(decision_id, key_text, rule_id, location, method, weights, months, category, resolution.reason)

    def _checked(self, shares: Shares, rule_id: str | None, method: str) -> Mapping[str, Decimal]:
        """Shares come from plugins and driver files: only declared cost centers, and finite,
        non-negative weights that are not all zero."""
        registered = self.registry.allocators.get(method)
        by = f"method {method!r}"
        if registered is not None and not type(registered.component).__module__.startswith("chargeback_engine."):
            by += f" of plugin {registered.plugin!r}"  # a built-in's plugin is the engine itself
        what = f"rule {rule_id!r} ({by})" if rule_id else by
        declared = {cc.id for cc in self.policy.cost_centers} | {self.policy.unallocated}
        undeclared = sorted(str(cc) for cc in shares.weights if cc not in declared)
        if undeclared:
            raise InputError(
                f"{what} allocates to undeclared cost center(s) {', '.join(map(repr, undeclared[:5]))}: "
                f"declare them under spec.cost_centers, or correct the driver or plugin"
            )
        bad = sorted(
            cc
            for cc, w in shares.weights.items()
            if not isinstance(w, Decimal | int) or not Decimal(w).is_finite() or Decimal(w) < 0
        )
        if bad or not any(Decimal(w) for w in shares.weights.values()):
            detail = f"weight of {bad[0]!r} is {shares.weights[bad[0]]!r}" if bad else "every weight is zero"
            raise InputError(
                f"{what} returned unusable shares: {detail}; weights must be finite, non-negative numbers, not all zero"
            )
        return shares.weights

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
                "shares": key_json({cc: str(w) for cc, w in d.weights}),
                "months": d.months,
                "reason": d.reason,
            }
            for d in sorted(decisions, key=lambda d: d.decision_id)
        ]
        return pa.Table.from_pylist(rows, schema=DECISION_RECORD_SCHEMA)


def split_table(decisions: Iterable[Decision], stage_rule: bool = False) -> pa.Table:
    rows = [
        {
            "decision_id": d.decision_id,
            "cost_center": cc,
            "weight": Decimal(w),
            "position": i,
            "months": d.months,
            "rule_id": d.rule_id,
            "method": d.method,
            "category": "shared" if stage_rule else d.category,
        }
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


@dataclass(frozen=True)
class Outcome:
    """One distinct way of allocating: the rule (None: no rule matched), the values of the
    fields its allocation read, and what the allocator resolved for them."""

    key: Mapping[str, str | None]
    rule: Rule | None
    resolution: Resolution


def _distinct_rows(table: pa.Table | None, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """For the distinct rows of ``table`` (nulls equal to nulls): the position of each one's
    first row, and every row's index among them. No Python object per row."""
    if table is None:
        return np.zeros(1, np.int64), np.zeros(rows, np.int64)
    codes = np.column_stack(
        [
            pc.fill_null((c if pa.types.is_dictionary(c.type) else c.dictionary_encode()).combine_chunks().indices, -1)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
            for c in (table[name] for name in table.column_names)
        ]
    )
    _, firsts, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return firsts, inverse.reshape(-1)


def _expanded(key: Mapping[str, str | None]) -> dict[str, str | None]:
    """The key an allocator sees: ``tags.*`` (every tag as JSON) spread into ``tags.<key>``."""
    expanded = {k: v for k, v in key.items() if k != ALL_TAGS}
    if key.get(ALL_TAGS):
        expanded.update({TAG_PREFIX + k: v for k, v in json.loads(key[ALL_TAGS] or "{}").items()})
    return expanded


def _filters(params: Any, policy: Policy) -> Iterable[Condition]:
    """Every ``filter:`` condition inside an allocation's parameters, nested blocks included."""
    if isinstance(params, Mapping):
        for name, value in params.items():
            if name == "filter" and isinstance(value, Mapping):
                yield compile_condition(value, policy.tags)
            else:
                yield from _filters(value, policy)
    elif isinstance(params, list):
        for value in params:
            yield from _filters(value, policy)


def _is_deferred(resolution: Any) -> bool:
    """Does the resolution wait for the period's direct cost (also inside an amortization)?"""
    while isinstance(resolution, Amortize):
        resolution = resolution.then
    return isinstance(resolution, DirectCostBasis)
