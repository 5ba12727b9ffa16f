"""The daily pipeline: collect each source into a local cache, one file per provider version.

``collect`` asks every ``spec.sources`` collector for the period and keeps what it returns
under ``<cache>/collected/<period>/<source id>/``: one Parquet file per restatement version
(:attr:`CollectedSource.version`) and ``latest.json`` naming the newest. A version already
stored is not written again, so a daily collect of an unchanged month writes nothing. Both
files are written beside their place and renamed into it, the pointer last: a crash leaves
the previous version current.

``month_to_date`` runs a period from those stored versions instead of calling the providers
again, which is what ``chargeback run --period current`` does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.components import CollectedSource
from chargeback_engine.durable_files import write_atomic, write_table_atomic
from chargeback_engine.engine.inputs import run_collector
from chargeback_engine.enrich.snapshots import cache_root
from chargeback_engine.errors import InputError
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry
from chargeback_engine.policy.policy_model import Policy, PolicySet

LATEST = "latest.json"


@dataclass(frozen=True)
class Collected:
    """What one source's collect did: ``stored`` a new version, or found it ``unchanged``."""

    source_id: str
    version: str
    rows: int
    path: Path
    stored: bool


def current_period() -> Period:
    """This month, in UTC."""
    return Period.of(datetime.now(UTC).date())


def parse_period(text: str) -> Period:
    """``YYYY-MM``, or ``current`` for this month."""
    return current_period() if text == "current" else Period.parse(text)


def collect(policy: Policy, registry: Registry, period: Period, root: Path | None = None) -> list[Collected]:
    """Collect every ``spec.sources`` entry for ``period`` and store the versions not stored yet."""
    root = root or cache_root(policy)  # the cache the policy's snapshots use too
    entries = policy.document.get("spec", {}).get("sources", [])
    if not entries:
        raise InputError(f"policy {policy.name} has no spec.sources to collect")
    outcomes: list[Collected] = []
    for entry in entries:
        name = entry.get("collector") or entry.get("type")
        sources = run_collector(registry.registered("collectors", name), name, entry, period)
        outcomes.extend(_store(source, root / "collected" / str(period)) for source in sources)
    return outcomes


def _store(source: CollectedSource, directory: Path) -> Collected:
    folder = directory / _safe(source.source_id)
    file = folder / f"{sha256_hex(source.version)[:24]}.parquet"
    latest = _latest(folder)
    if latest is not None and latest["version"] == source.version and file.exists():
        return Collected(source.source_id, source.version, source.table.num_rows, file, stored=False)
    folder.mkdir(parents=True, exist_ok=True)
    if not file.exists():
        write_table_atomic(source.table, file)
    pointer = {
        "source_id": source.source_id,
        "version": source.version,
        "file": file.name,
        "rows": source.table.num_rows,
        "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "details": dict(source.details),
    }
    write_atomic(folder / LATEST, (json.dumps(pointer, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))
    return Collected(source.source_id, source.version, source.table.num_rows, file, stored=True)


def _safe(source_id: str) -> str:
    """A source id as one directory name (ids may hold ``/`` and ``:``)."""
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in source_id)[:80]
    return f"{readable}-{sha256_hex(source_id)[:8]}"


def _latest(folder: Path) -> dict[str, Any] | None:
    pointer = folder / LATEST
    if not pointer.exists():
        return None
    try:
        latest: dict[str, Any] = json.loads(pointer.read_text(encoding="utf-8"))
        return latest
    except ValueError as exc:
        raise InputError(f"{pointer}: not a readable pointer ({exc}); run chargeback collect again") from None


def cached_sources(period: Period, root: Path) -> list[CollectedSource]:
    """The latest stored version of every source collected for ``period``, by source id."""
    directory = root / "collected" / str(period)
    sources = []
    for folder in sorted(directory.iterdir()) if directory.is_dir() else []:
        pointer = _latest(folder)
        if pointer is None:
            continue
        try:
            table = pq.read_table(folder / pointer["file"])
        except (OSError, ValueError) as exc:
            raise InputError(f"{folder / pointer['file']}: cannot read the stored version: {exc}") from None
        sources.append(CollectedSource(pointer["source_id"], table, pointer["version"], pointer.get("details", {})))
    if not sources:
        raise InputError(
            f"nothing collected for {period} in {directory}; run chargeback collect --period {period} first"
        )
    return sorted(sources, key=lambda s: s.source_id)


def without_sources(policies: PolicySet) -> PolicySet:
    """The policies with their ``spec.sources`` left out: the cache stands in for the collectors."""

    def strip(policy: Policy) -> Policy:
        spec = {k: v for k, v in policy.document.get("spec", {}).items() if k != "sources"}
        return replace(policy, document={**policy.document, "spec": spec})

    return PolicySet(tuple(strip(p) for p in policies.policies))


def month_to_date(engine: Any, period: Period, inputs: Sequence[Any] = (), **run: Any) -> Any:
    """Run ``period`` with ``engine`` from the latest collected versions (plus ``inputs``), its
    policies' sources left out; ``run`` goes to ``Engine.run`` (``out``, ``progress``, ``carry``).
    The run id is the one a live collect of the same data would give."""
    root = cache_root(engine.policies.for_period(period))
    cached = copy.copy(engine)
    cached.policies = without_sources(engine.policies)
    return cached.run([*inputs, *cached_sources(period, root)], period, **run)
