"""What a plugin contributes: collectors, allocators, exporters and notifiers.

Each component has a kebab-case ``name`` and the JSON Schema of its own parameters; the
kernel assembles those fragments into the policy schema, so a policy that uses a plugin is
validated as strictly as one that uses only built-ins.

Internal module: plugin authors import these names from :mod:`chargeback_engine.plugin`.
It sits low in the layers (below ``policy`` and ``engine``), so the types it names from
above (``Policy``, ``Condition``) are imported for type checking only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.money import LEDGER_QUANTUM
from chargeback_engine.periods import Period

if TYPE_CHECKING:
    import duckdb

    from chargeback_engine.policy.match import Condition
    from chargeback_engine.policy.policy_model import AllocationSpec, Policy

JsonPath = tuple["str | int", ...]


@dataclass(frozen=True)
class Finding:
    """A semantic problem in a component's parameters, at a path relative to them."""

    path: JsonPath
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class CollectedSource:
    """One source's cost data for a period, as a FOCUS cost table, with provenance."""

    source_id: str
    table: pa.Table  # conforms to chargeback_engine.focus.COST_TABLE_SCHEMA
    version: str  # changes whenever the provider restates the data
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Collector(Protocol):
    name: str
    #: JSON Schema of one entry of a policy's ``sources:`` list.
    config_schema: Mapping[str, Any]

    def collect(self, config: Mapping[str, Any], period: Period) -> Iterable[CollectedSource]:
        """Read the cost data of ``period`` for one ``sources:`` entry (``id`` and ``collector`` included)."""
        ...


@dataclass(frozen=True)
class Shares:
    """A resolved allocation: a non-negative weight per cost center, and why.

    The data plane splits every amount by these weights with the largest-remainder rule
    (``money.split``), ordering cost centers by id for the tie-break. All-zero weights are
    not allowed: an allocator that finds no weight falls back explicitly.
    """

    weights: Mapping[str, Decimal]
    reason: str


@dataclass(frozen=True)
class DirectCostBasis:
    """Weights not known yet: the targets' own directly allocated cost in the run period.

    The engine resolves it after every other line of the period has been allocated
    directly. ``targets`` None means every consumer (non-shared cost center) with direct
    cost; ``filter`` restricts which direct-cost lines count (e.g. compute only);
    ``fallback`` applies when every weight is zero.
    """

    targets: tuple[str, ...] | None
    filter: Condition | None
    fallback: Literal["even", "unallocated"]
    reason: str


@dataclass(frozen=True)
class Amortize:
    """Spread each line over ``months`` months from its charge period (None: its commitment
    term, ChargePeriodStart to ChargePeriodEnd), then split each month's part by ``then``."""

    months: int | None
    then: Resolution
    reason: str


Resolution = Shares | DirectCostBasis | Amortize


def fallback_shares(fallback: str, among: Iterable[str], context: AllocationContext, why: str) -> Shares:
    """All weights were zero: split evenly among the candidates, or park in the unallocated bucket.

    The reason says what happened (``why``), which fallback was declared, and what it did.
    The kernel uses it for ``DirectCostBasis``, and allocators for their own ``fallback:``.
    """
    candidates = sorted(set(among))
    if fallback == "even" and candidates:
        return Shares(
            {cc: Decimal(1) for cc in candidates},
            f"{why} (fallback: even, among {len(candidates)} cost centers), fell back to even split",
        )
    declared = "fallback: unallocated" if fallback != "even" else "fallback: even, but no cost center to split among"
    return Shares({context.policy.unallocated: Decimal(1)}, f"{why} ({declared}), fell back to unallocated")


class AllocationContext(Protocol):
    """What an allocator may look at when it resolves one decision."""

    #: The match key: the FOCUS columns any rule or method reads, plus every normalised
    #: tag as ``tags.<key>``. A missing value is absent or None.
    key: Mapping[str, str | None]
    period: Period
    policy: Policy

    def consumers(self) -> tuple[str, ...]:
        """Cost centers that consume shared cost: not shared, not the unallocated bucket."""
        ...

    def driver(self, driver_id: str, filter: Condition | None = None) -> Mapping[str, Decimal]:
        """Quantity per cost center of a usage driver in the run period."""
        ...

    def resolve(self, spec: AllocationSpec) -> Resolution:
        """Resolve a nested ``allocate:`` block (``then:``, tiers) with this same key."""
        ...


@runtime_checkable
class Allocator(Protocol):
    """An allocation method. The kernel validates its parameters (``params_schema``,
    ``check``, ``targets``) and asks it once per distinct match key, never per line, how
    lines with that key are split (``resolve``).

    ``resolve`` returns :class:`Shares` (final weights), :class:`DirectCostBasis` (weights
    that depend on the period's direct allocation) or :class:`Amortize` (spread over
    months); the data plane applies the result to every line with that key in bulk.
    ``params`` never contains ``method``; nested ``allocate:`` blocks are resolved with
    ``context.resolve``. ``fields`` names the FOCUS columns (or ``tags.<key>``) the method
    reads beyond the rule's ``when:``, so they become part of the match key.
    """

    name: str
    #: JSON Schema of the ``allocate:`` block (``method`` included) for this method.
    params_schema: Mapping[str, Any]

    def check(self, params: Mapping[str, Any], policy: Policy) -> Iterable[Finding]:
        """Semantic checks the schema cannot express (unknown cost centers, sums)."""
        ...

    def targets(self, params: Mapping[str, Any], policy: Policy) -> frozenset[str]:
        """Cost centers these parameters name explicitly; the kernel uses them to find stage cycles."""
        ...

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        """FOCUS columns or ``tags.<key>`` the method reads (``tags.*``: every tag)."""
        ...

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        """Decide how the lines with ``context.key`` are split."""
        ...


class RunStore(Protocol):
    """Where a run's line items and ledger are: stream them, or query them as SQL.

    SQL sees the views ``ledger``, ``records`` and ``ledger_amounts`` (run, period, cost
    center, currency, amount: the cheap one for totals).
    """

    def sql(self, query: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation: ...

    def scalar(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """The one value ``query`` returns."""
        ...

    def table(self, query: str, params: Sequence[Any] | None = None, schema: pa.Schema | None = None) -> pa.Table:
        """The result of ``query`` as Arrow, cast to ``schema`` when given."""
        ...

    def ledger(self, where: str = "TRUE", record_columns: Sequence[str] = ()) -> pa.RecordBatchReader:
        """Ledger rows matching ``where``, in order, with the named line-item columns as ``record.<column>``."""
        ...


class RunInput(Protocol):
    """One input of a run, as the manifest lists it."""

    @property
    def source_id(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def path(self) -> str | None: ...
    @property
    def version(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


class RunResult(Protocol):
    """What an exporter may read from a finished, conserved run (the engine's ``RunResult``).

    The ledger tables follow ``LEDGER_SCHEMA``, ``records`` the FOCUS cost table; a ``where``
    is SQL over the ledger's columns, e.g. :attr:`in_period_sql`.
    """

    @property
    def run_id(self) -> str: ...
    @property
    def period(self) -> Period: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def decisions(self) -> pa.Table: ...
    @property
    def inputs(self) -> Sequence[RunInput]: ...
    @property
    def engine_version(self) -> str: ...
    @property
    def input_rows(self) -> int: ...
    @property
    def store(self) -> RunStore: ...
    @property
    def in_period_sql(self) -> str:
        """The ``where`` of ledger rows charged to the run period."""
        ...

    @property
    def later_sql(self) -> str:
        """The ``where`` of amortization parts for later periods."""
        ...

    @property
    def ledger(self) -> pa.Table:
        """Every ledger row, amortization parts of later periods included."""
        ...

    @property
    def allocations(self) -> pa.Table:
        """Ledger rows charged to the run period."""
        ...

    @property
    def schedule(self) -> pa.Table:
        """Amortization parts for later periods."""
        ...

    @property
    def records(self) -> pa.Table:
        """The line items, in load order."""
        ...

    def summary(self) -> list[tuple[str, str, Decimal]]:
        """(cost center, currency, amount) for the run period, the unallocated bucket included."""
        ...

    def summary_query(self) -> str:
        """The SQL of :meth:`summary` over ``store``, for an exporter that streams it."""
        ...

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: input, allocated, deferred and carried totals."""
        ...

    def count(self, where: str = "TRUE") -> int:
        """Ledger rows matching ``where``."""
        ...


@runtime_checkable
class Exporter(Protocol):
    """Writes part of a finished run. The engine calls it only after conservation holds."""

    name: str
    options_schema: Mapping[str, Any]

    def export(self, result: RunResult, directory: Path) -> Sequence[Path]:
        """Write files for ``result`` into ``directory``; return them.

        ``directory`` is a private staging directory: the engine moves each file into the
        output directory atomically and writes ``manifest.json`` last.
        """
        ...


@dataclass(frozen=True)
class Alert:
    """Something a budget owner must hear about; what a notifier delivers. ``key`` makes it
    unique per period."""

    kind: str  # budget-actual | budget-forecast | anomaly | tag-report
    period: str
    cost_center: str
    amount: Decimal
    message: str
    threshold_pct: Decimal | None = None
    budget: Decimal | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    currency: str = "USD"

    @property
    def key(self) -> tuple[str, ...]:
        """Same key, same alert: a budget threshold once per period, an anomaly once per day and service."""
        extra = (self.details.get("service", ""), self.details.get("day", "")) if self.kind == "anomaly" else ()
        return (self.kind, self.period, self.cost_center, str(self.threshold_pct or ""), *extra)

    @property
    def alert_id(self) -> str:
        return sha256_hex(json.dumps(self.key))[:32]

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "period": self.period,
            "cost_center": self.cost_center,
            "currency": self.currency,
            "amount": _exact(self.amount),
            "budget": None if self.budget is None else _exact(self.budget),
            "threshold_pct": None if self.threshold_pct is None else str(self.threshold_pct),
            "message": self.message,
            "details": dict(self.details),
        }


def _exact(amount: Decimal) -> str:
    """An amount at the ledger's scale, so every amount of an alert has the same digits after the point."""
    return format(amount.quantize(LEDGER_QUANTUM), "f")


@runtime_checkable
class Notifier(Protocol):
    """Delivers budget and anomaly alerts (chat, webhook, email)."""

    name: str
    #: JSON Schema of one notifier entry's options (everything but ``type`` and ``id``).
    options_schema: Mapping[str, Any]

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        """Deliver one alert, or raise; the host records it as sent only if this returns."""
        ...
