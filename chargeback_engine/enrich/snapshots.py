"""Dated inventory snapshots in the local cache: a rerun of a period reads the same one.

An inventory changes every day, so enriching a rerun from a fresh read would change a
closed month's outputs. Each source's tags are therefore stored once per period, as
``<cache>/enrichment/<period>/<source id>-<options digest>/<taken at>.parquet`` (one row
per scope, key and tag), written atomically. A run reads the newest snapshot of its
period, and takes one only when there is none; ``chargeback enrich`` takes a fresh one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.durable_files import write_table_atomic
from chargeback_engine.enrich.model import SCOPES, Enricher, TagRecord, entry_id
from chargeback_engine.errors import InputError
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry, plugin_fault, reported
from chargeback_engine.policy.paths import beside_policy

if TYPE_CHECKING:
    from chargeback_engine.policy.policy_model import Policy

#: Where the cache lives when neither ``spec.enrich.cache`` nor this variable says.
CACHE_ENV = "CHARGEBACK_CACHE_DIR"

SNAPSHOT_SCHEMA = pa.schema(
    [
        pa.field("scope", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=False),
    ]
)

_STAMP = "%Y%m%dT%H%M%SZ"

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def cache_root(policy: Policy) -> Path:
    """The policy's ``spec.enrich.cache`` (relative to the policy file), else
    ``$CHARGEBACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/chargeback`` (``~/.cache/chargeback``):
    where its snapshots and collected sources are kept."""
    configured = (policy.document.get("spec", {}).get("enrich") or {}).get("cache")
    if configured:
        return beside_policy(policy.path, configured)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chargeback"


@dataclass(frozen=True)
class Snapshot:
    """One source's tags as read at ``taken_at``."""

    source_id: str
    enricher: str
    taken_at: datetime
    path: Path
    table: pa.Table  # SNAPSHOT_SCHEMA

    @property
    def stamp(self) -> str:
        """``2026-10-31T23:00Z``: how the audit trail names the snapshot."""
        return self.taken_at.strftime("%Y-%m-%dT%H:%MZ")


def snapshot_directory(root: Path, period: Period, entry: Mapping[str, Any]) -> Path:
    """One directory per source and options: changing a source's options starts afresh."""
    digest = sha256_hex(json.dumps(entry, sort_keys=True, default=str))[:12]
    return root / "enrichment" / str(period) / f"{entry_id(entry)}-{digest}"


def latest_snapshot(root: Path, period: Period, entry: Mapping[str, Any]) -> Snapshot | None:
    """The newest stored snapshot of this source for ``period``, or None."""
    directory = snapshot_directory(root, period, entry)
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    return _read(files[-1], entry) if files else None


def take_snapshot(
    root: Path, period: Period, entry: Mapping[str, Any], registry: Registry, clock: Clock = _now
) -> Snapshot:
    """Read the source's inventory now and store it; the previous snapshots stay."""
    name = str(entry["enricher"])
    registered = registry.registered("enrichers", name)
    enricher: Enricher = registered.component
    taken_at = clock().astimezone(UTC).replace(microsecond=0)
    with reported("enricher", registered, name):
        records = list(enricher.inventory(entry))
    wrong = next((r for r in records if not isinstance(r, TagRecord) or r.scope not in SCOPES), None)
    if wrong is not None:
        what = f"returned {wrong!r:.80}, not a TagRecord whose scope is one of {', '.join(SCOPES)}"
        raise plugin_fault("enricher", registered, name, what)
    table = snapshot_table(records)
    directory = snapshot_directory(root, period, entry)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{taken_at.strftime(_STAMP)}.parquet"
    metadata = {
        "enricher": name,
        "source_id": entry_id(entry),
        "taken_at": taken_at.isoformat(),
        "options": json.dumps(entry, sort_keys=True, default=str),
    }
    write_table_atomic(table.replace_schema_metadata(metadata), path)
    return Snapshot(entry_id(entry), name, taken_at, path, table)


def snapshot_table(records: Iterable[TagRecord]) -> pa.Table:
    """One row per scope, key and tag, sorted; a later record for the same tag replaces an earlier one."""
    rows: dict[tuple[str, str, str], str] = {}
    for record in records:
        if record.scope not in SCOPES:
            raise InputError(f"an enricher returned scope {record.scope!r}; use one of {', '.join(SCOPES)}")
        for tag, value in record.tags.items():
            if value is not None and str(value).strip() != "":
                rows[(record.scope, record.key, str(tag))] = str(value)
    ordered = sorted(rows.items())
    return pa.table(
        {
            "scope": [k[0] for k, _ in ordered],
            "key": [k[1] for k, _ in ordered],
            "tag": [k[2] for k, _ in ordered],
            "value": [v for _, v in ordered],
        },
        schema=SNAPSHOT_SCHEMA,
    )


def _read(path: Path, entry: Mapping[str, Any]) -> Snapshot:
    try:
        table = pq.read_table(path)
        metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        taken_at = datetime.fromisoformat(metadata["taken_at"])
        table = table.replace_schema_metadata(None).cast(SNAPSHOT_SCHEMA)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a readable enrichment snapshot ({exc}); delete it to take a fresh one") from None
    return Snapshot(entry_id(entry), str(entry["enricher"]), taken_at, path, table)
