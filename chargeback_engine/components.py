"""What a plugin contributes: collectors, allocators, exporters and notifiers.

Each component has a kebab-case ``name`` and the JSON Schema of its own parameters; the
kernel assembles those fragments into the policy schema, so a policy that uses a plugin is
validated as strictly as one that uses only built-ins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from chargeback_engine.periods import Period

if TYPE_CHECKING:
    from chargeback_engine.insight.alerts import Alert
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

    def collect(self, config: Mapping[str, Any], period: Period | None) -> Iterable[CollectedSource]: ...


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

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        """Semantic checks the schema cannot express (unknown cost centers, sums)."""
        ...

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        """Cost centers these parameters name explicitly; the kernel uses them to find stage cycles."""
        ...

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        """FOCUS columns or ``tags.<key>`` the method reads (``tags.*``: every tag)."""
        ...

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        """Decide how the lines with ``context.key`` are split."""
        ...


@runtime_checkable
class Exporter(Protocol):
    """Writes part of a finished run. The engine calls it only after conservation holds."""

    name: str
    options_schema: Mapping[str, Any]

    def export(self, result: Any, directory: Path) -> Sequence[Path]:
        """Write files for ``result`` (a ``RunResult``) into ``directory``; return them.

        ``directory`` is a private staging directory: the engine moves each file into the
        output directory atomically and writes ``manifest.json`` last.
        """
        ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers budget and anomaly alerts (chat, webhook, email)."""

    name: str
    #: JSON Schema of one notifier entry's options (everything but ``type`` and ``id``).
    options_schema: Mapping[str, Any]

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        """Deliver one alert, or raise; the host records it as sent only if this returns."""
        ...
