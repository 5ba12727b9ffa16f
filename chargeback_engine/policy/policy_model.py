"""The policy model: immutable values built from a validated policy document.

Everything downstream (rule resolution, the data plane, audit) reads these objects, never
the YAML, so a policy means the same thing however it was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from chargeback_engine.canonical import canonical_json, sha256_text
from chargeback_engine.errors import PeriodError
from chargeback_engine.periods import Period
from chargeback_engine.policy.match import Condition, TagNormalizer

Mode = Literal["showback", "chargeback", "auto"]


@dataclass(frozen=True)
class SourceLocation:
    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class CostCenter:
    id: str
    name: str
    mode: Mode = "showback"
    gl_account: str | None = None
    entity: str | None = None
    shared: bool = False
    owner: str | None = None


@dataclass(frozen=True)
class AllocationSpec:
    """An ``allocate:`` block: the method name and its parameters, as written."""

    method: str
    params: Mapping[str, Any]

    def nested(self, key: str = "then") -> AllocationSpec | None:
        inner = self.params.get(key)
        return AllocationSpec.from_document(inner) if isinstance(inner, Mapping) else None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> AllocationSpec:
        params = {k: v for k, v in doc.items() if k != "method"}
        return cls(method=doc["method"], params=params)


@dataclass(frozen=True)
class Rule:
    id: str
    priority: int
    when: Condition
    allocate: AllocationSpec
    location: SourceLocation
    description: str = ""


@dataclass(frozen=True)
class Stage:
    """A shared pool redistributed to consumers after direct allocation."""

    pool: str
    allocate: AllocationSpec
    location: SourceLocation


@dataclass(frozen=True)
class Driver:
    """A usage metric per period and cost center, read from a file or given inline."""

    id: str
    file: str | None = None
    inline: tuple[tuple[str, str, Decimal], ...] = ()  # (period, cost_center, quantity)


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    effective_from: date
    effective_until: date | None
    currency: str
    cost_column: str
    unallocated: str
    tags: TagNormalizer
    cost_centers: tuple[CostCenter, ...]
    drivers: tuple[Driver, ...]
    rules: tuple[Rule, ...]  # highest priority first
    stages: tuple[Stage, ...]
    document: Mapping[str, Any] = field(repr=False, compare=False)
    path: str = ""
    content_hash: str = ""

    def covers(self, period: Period) -> bool:
        starts_before = self.effective_from <= period.start
        ends_after = self.effective_until is None or period.end <= self.effective_until
        return starts_before and ends_after

    def cost_center(self, cc_id: str) -> CostCenter | None:
        return next((cc for cc in self.cost_centers if cc.id == cc_id), None)


@dataclass(frozen=True)
class PolicySet:
    """All loaded policies; each billing period is governed by exactly one of them."""

    policies: tuple[Policy, ...]

    @property
    def version(self) -> str:
        """``name@version`` of each policy, in effective order, joined by ``+``."""
        return "+".join(f"{p.name}@{p.version}" for p in self._in_effective_order())

    @property
    def content_hash(self) -> str:
        """One hash over the content hashes of all policies; file names and order do not count."""
        return sha256_text("\n".join(sorted(p.content_hash for p in self.policies)))

    def _in_effective_order(self) -> list[Policy]:
        return sorted(self.policies, key=lambda p: (p.effective_from, p.name))

    def for_period(self, period: Period) -> Policy:
        matching = [p for p in self.policies if p.covers(period)]
        if not matching:
            raise PeriodError(f"no policy is effective for period {period}")
        if len(matching) > 1:
            names = ", ".join(f"{p.name}@{p.version}" for p in matching)
            raise PeriodError(f"policies {names} all cover period {period}")
        return matching[0]


def content_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a policy document.

    Comments, layout, quoting, flow or block style and the order of mapping keys do not
    count; the order of list items does. Numbers are written in their shortest exact
    decimal form, so ``0.40`` and ``0.4`` hash alike.
    """
    return sha256_text(canonical_json(document))
