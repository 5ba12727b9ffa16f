"""What a plugin contributes: collectors, allocators, exporters and notifiers.

Each component has a kebab-case ``name`` and the JSON Schema of its own parameters; the
kernel assembles those fragments into the policy schema, so a policy that uses a plugin is
validated as strictly as one that uses only built-ins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

from chargeback_engine.periods import Period

if TYPE_CHECKING:
    from chargeback_engine.insight.alerts import Alert

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


@runtime_checkable
class Allocator(Protocol):
    name: str
    #: JSON Schema of the ``allocate:`` block (``method`` included) for this method.
    params_schema: Mapping[str, Any]

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        """Semantic checks the schema cannot express (unknown cost centers, sums)."""
        ...

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        """Cost centers these parameters name explicitly; the kernel uses them to find stage cycles."""
        ...


@runtime_checkable
class Exporter(Protocol):
    name: str
    options_schema: Mapping[str, Any]


@runtime_checkable
class Notifier(Protocol):
    name: str
    #: JSON Schema of one notifier entry's options (everything but ``type`` and ``id``).
    options_schema: Mapping[str, Any]

    def send(self, alert: Alert, options: Mapping[str, Any]) -> None:
        """Deliver one alert, or raise; the host records it as sent only if this returns."""
        ...
