"""Fill the bill's tag gaps from inventory snapshots, per distinct key, with provenance.

``enrich_records`` is the one step the engine calls between collecting and allocating. It
groups the lines by their distinct (``Tags``, ``ResourceId``, ``SubAccountId``), merges
each group's tags with what the snapshots hold for that resource, its resource group and
its account under the policy's precedence, and maps the result back onto the lines through
the group index: Python runs once per distinct key, Arrow and NumPy per line.

Keys are compared after the policy's tag normalisation (case, spaces, aliases), so an
inventory's ``CostCenter`` fills the bill's missing ``cost-center``; a filled tag is
written under its canonical key. Every value filled is recorded with its source and
snapshot time in the enrichment table (:data:`ENRICHMENT_SCHEMA`, one row per line and
tag filled), which the run writes as ``enrichment.parquet`` and ``explain`` shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.durable_files import file_sha256, table_sha256, write_table_atomic
from chargeback_engine.enrich.model import BILL
from chargeback_engine.enrich.snapshots import Snapshot, cache_root, latest_snapshot, take_snapshot
from chargeback_engine.focus import ENCODED_TEXT
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry
from chargeback_engine.policy.match import TagNormalizer
from chargeback_engine.policy.policy_model import Policy

#: The source id of the enrichment table among a run's inputs.
ENRICHMENT_INPUT = "enrichment"

#: The enrichment table. Text is dictionary-encoded: a month has millions of filled tags
#: but few distinct sources, tags and values, so each row holds indices, not copies.
ENRICHMENT_SCHEMA = pa.schema(
    [
        pa.field("x_SourceId", ENCODED_TEXT),
        pa.field("x_SourceRow", pa.int64()),
        pa.field("tag", ENCODED_TEXT),
        pa.field("value", ENCODED_TEXT),
        pa.field("source", ENCODED_TEXT),  # the spec.enrich.sources id
        pa.field("enricher", ENCODED_TEXT),
        pa.field("snapshot", ENCODED_TEXT),  # when the snapshot was taken, 2026-10-31T23:00Z
        pa.field("scope", ENCODED_TEXT),  # resource, resource-group or account
        pa.field("key", ENCODED_TEXT),  # the resource id, group or account the value was found under
        pa.field("replaced", ENCODED_TEXT),  # the bill's value, when the precedence put the inventory first
    ]
)

#: Narrower scopes win within one source: a resource's own tag over its group's and account's.
_SCOPE_ORDER = ("account", "resource-group", "resource")
_RESOURCE_GROUP = re.compile(r"^(/subscriptions/[^/]+/resourcegroups/[^/]+)")


@dataclass(frozen=True)
class Fill:
    """One tag value a source holds for a group of lines, and where it was found."""

    value: str
    source: Snapshot
    scope: str
    key: str


def snapshots_for(policy: Policy, registry: Registry, period: Period, *, refresh: bool = False) -> list[Snapshot]:
    """The snapshot of each ``spec.enrich.sources`` entry for ``period``: the stored one, or
    a fresh one when ``refresh`` or when none is stored yet."""
    spec = policy.document.get("spec", {}).get("enrich") or {}
    root = cache_root(policy)
    snapshots = []
    for entry in spec.get("sources", []):
        stored = None if refresh else latest_snapshot(root, period, entry)
        snapshots.append(stored or take_snapshot(root, period, entry, registry))
    return snapshots


def enrich_records(
    records: pa.Table, policy: Policy, registry: Registry, period: Period, inputs: MutableSequence[Any]
) -> pa.Table:
    """``records`` with their tag gaps filled as the policy's ``spec.enrich`` says.

    Each snapshot used, and the enrichment table, are appended to ``inputs`` (the run's
    :class:`~chargeback_engine.engine.result.InputInfo` list), so they count in the run id
    and the manifest names them. Without ``spec.enrich`` the records pass unchanged.
    """
    from chargeback_engine.engine.result import InputInfo

    spec = policy.document.get("spec", {}).get("enrich")
    if not spec or not spec.get("sources"):
        return records
    snapshots = snapshots_for(policy, registry, period)
    tags, provenance = _enrich(records, snapshots, _Precedence(spec, snapshots), policy.tags)
    for snapshot in snapshots:
        inputs.append(
            InputInfo(
                f"enrich:{snapshot.source_id}",
                file_sha256(snapshot.path),
                snapshot.table.num_rows,
                path=str(snapshot.path),
                version=snapshot.stamp,
                details={"enricher": snapshot.enricher, "taken_at": snapshot.taken_at.isoformat()},
            )
        )
    path = _store_provenance(provenance, cache_root(policy), period)
    filled = pc.value_counts(provenance["source"]).to_pylist() if provenance.num_rows else []
    inputs.append(
        InputInfo(
            ENRICHMENT_INPUT,
            file_sha256(path),
            provenance.num_rows,
            path=str(path),
            details={"filled": {f["values"]: f["counts"] for f in filled}},
        )
    )
    return records.set_column(records.schema.get_field_index("Tags"), "Tags", tags)


class _Precedence:
    """The order in which the bill and the sources are asked for each (canonical) tag key."""

    def __init__(self, spec: Mapping[str, Any], snapshots: Sequence[Snapshot]):
        precedence = spec.get("precedence", {})
        self.default = tuple(precedence.get("default") or (BILL, *(s.source_id for s in snapshots)))
        self.keys = {k: tuple(v) for k, v in precedence.get("keys", {}).items()}

    def order(self, tag: str) -> tuple[str, ...]:
        """The sources in order; the bill is last when the list leaves it out."""
        order = self.keys.get(tag, self.default)
        return order if BILL in order else (*order, BILL)


#: source id -> scope -> folded key -> canonical tag -> fill
_Lookups = dict[str, dict[str, dict[str, dict[str, Fill]]]]


def _lookups(snapshots: Sequence[Snapshot], normalizer: TagNormalizer) -> _Lookups:
    """source id -> scope -> folded key -> canonical tag -> fill; once per inventory row.

    Two tags of one record that normalise to one key are resolved as the bill's are
    (``prefer-exact``): the tag already canonical, else the smallest in code-point order."""
    lookups: _Lookups = {}
    for snapshot in snapshots:
        by_scope: dict[str, dict[str, dict[str, Fill]]] = {}
        ranks: dict[tuple[str, str, str], tuple[int, str]] = {}
        columns = snapshot.table.to_pydict()
        rows = zip(columns["scope"], columns["key"], columns["tag"], columns["value"], strict=True)
        for scope, key, tag, value in rows:
            canonical, folded = normalizer.normalize_key(tag), key.casefold()
            rank = (0 if tag == canonical else 1, tag)
            if ranks.setdefault((scope, folded, canonical), rank) < rank:
                continue
            ranks[(scope, folded, canonical)] = rank
            by_scope.setdefault(scope, {}).setdefault(folded, {})[canonical] = Fill(
                normalizer.normalize_value(value), snapshot, scope, key
            )
        lookups[snapshot.source_id] = by_scope
    return lookups


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of a text column (nulls get the code one past the dictionary) and its dictionary."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(array)
    dictionary = array.dictionary
    codes = pc.fill_null(array.indices.cast(pa.int64()), len(dictionary)).to_numpy(zero_copy_only=False)
    return codes, dictionary


def _groups(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of several code columns (one per row of the result) and, for
    every line, its group. The codes are combined into one int64 per line when they fit,
    which sorts fastest and holds one column, not a copy of all of them."""
    if np.prod([float(s + 1) for s in sizes]) < 2.0**62:
        combined = np.zeros(len(columns[0]), dtype=np.int64)
        for codes, size in zip(columns, sizes, strict=True):
            combined = combined * (size + 1) + codes
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        return np.stack([codes[first] for codes in columns], axis=1), inverse.reshape(-1)
    distinct, inverse = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)


def _enrich(
    records: pa.Table, snapshots: Sequence[Snapshot], precedence: _Precedence, normalizer: TagNormalizer
) -> tuple[pa.Array, pa.Table]:
    tag_codes, tag_texts = _codes(records["Tags"])
    resource_codes, resources = _codes(records["ResourceId"])
    account_codes, accounts = _codes(records["SubAccountId"])
    distinct, line_group = _groups(
        [tag_codes, resource_codes, account_codes], [len(tag_texts), len(resources), len(accounts)]
    )
    lookups = _lookups(snapshots, normalizer)
    texts, resource_ids, account_ids = tag_texts.to_pylist(), resources.to_pylist(), accounts.to_pylist()

    bills: dict[int, _Bill | None] = {}  # parsed once per distinct Tags text, not per group
    new_texts: dict[str, int] = {}
    group_code = np.empty(len(distinct), dtype=np.int64)  # the enriched Tags code of each group; -1: null
    fills: list[list[tuple[str, Fill, str | None]]] = []
    for group, (t, r, a) in enumerate(distinct.tolist()):
        text = texts[t] if t < len(texts) else None
        candidates = _candidates(
            lookups,
            resource_ids[r] if r < len(resource_ids) else None,
            account_ids[a] if a < len(account_ids) else None,
        )
        if t not in bills and candidates:
            bills[t] = _Bill.parse(text, normalizer)
        bill = bills.get(t)
        merged, filled = _merge(bill, candidates, precedence) if bill is not None else ("", [])
        fills.append(filled)
        if not filled:
            group_code[group] = t if text is not None else -1
        else:
            group_code[group] = len(texts) + new_texts.setdefault(merged, len(new_texts))

    dictionary = pa.array([*texts, *new_texts], pa.string())
    line_codes = group_code[line_group]
    tags = pa.DictionaryArray.from_arrays(pa.array(line_codes.astype(np.int32), mask=line_codes < 0), dictionary).cast(
        ENCODED_TEXT
    )
    return tags, _provenance(records, fills, line_group)


def _candidates(lookups: _Lookups, resource: str | None, account: str | None) -> dict[str, dict[str, Fill]]:
    """canonical tag -> source id -> the value that source holds for these lines."""
    keys = {"resource": resource.casefold() if resource else None, "account": account.casefold() if account else None}
    group = _RESOURCE_GROUP.match(keys["resource"] or "")
    keys["resource-group"] = group.group(1) if group else None
    candidates: dict[str, dict[str, Fill]] = {}
    for source_id, by_scope in lookups.items():
        for scope in _SCOPE_ORDER:  # narrower scopes overwrite wider ones
            key = keys[scope]
            for tag, fill in by_scope.get(scope, {}).get(key, {}).items() if key else ():
                candidates.setdefault(tag, {})[source_id] = fill
    return candidates


@dataclass(frozen=True)
class _Bill:
    """A line's own tags, and the canonical key of each non-empty one."""

    tags: Mapping[str, Any]
    present: Mapping[str, tuple[str, ...]]  # canonical key -> the bill's keys for it

    @classmethod
    def parse(cls, text: str | None, normalizer: TagNormalizer) -> _Bill | None:
        """None for Tags that are not a JSON object: the kernel reports them; enrichment leaves them alone."""
        try:
            tags = json.loads(text) if text else {}
        except ValueError:
            return None
        if not isinstance(tags, dict):
            return None
        present: dict[str, tuple[str, ...]] = {}
        for key, value in tags.items():
            if value is not None and str(value).strip() != "":
                canonical = normalizer.normalize_key(key)
                present[canonical] = (*present.get(canonical, ()), key)
        return cls(tags, present)


def _merge(
    bill: _Bill, candidates: Mapping[str, Mapping[str, Fill]], precedence: _Precedence
) -> tuple[str, list[tuple[str, Fill, str | None]]]:
    """The group's Tags text after enrichment, and (tag, fill, replaced bill value) per tag filled."""
    merged = dict(bill.tags)
    filled: list[tuple[str, Fill, str | None]] = []
    for tag in sorted(candidates):
        for source in precedence.order(tag):
            if source == BILL and tag in bill.present:
                break
            if source != BILL and source in candidates[tag]:
                replaced = [merged.pop(k) for k in bill.present.get(tag, ())]
                fill = candidates[tag][source]
                merged[tag] = fill.value
                filled.append((tag, fill, str(replaced[0]) if replaced else None))
                break
    if not filled:
        return "", []
    return json.dumps(dict(sorted(merged.items())), ensure_ascii=False, separators=(",", ":")), filled


def _provenance(
    records: pa.Table, fills: Sequence[Sequence[tuple[str, Fill, str | None]]], line_group: np.ndarray
) -> pa.Table:
    """One row per line and tag filled, built by repeating each group's fills over its lines."""
    counts = np.array([len(f) for f in fills], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    lines = np.nonzero(counts[line_group])[0]
    per_line = counts[line_group[lines]]
    repeated = np.repeat(lines, per_line)
    within = np.arange(len(repeated)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
    entries = starts[line_group[repeated]] + within
    flat = [entry for group in fills for entry in group]
    per_fill = {
        "tag": [t for t, _, _ in flat],
        "value": [f.value for _, f, _ in flat],
        "source": [f.source.source_id for _, f, _ in flat],
        "enricher": [f.source.enricher for _, f, _ in flat],
        "snapshot": [f.source.stamp for _, f, _ in flat],
        "scope": [f.scope for _, f, _ in flat],
        "key": [f.key for _, f, _ in flat],
        "replaced": [r for _, _, r in flat],
    }
    at, entry = pa.array(repeated, pa.int64()), pa.array(entries, pa.int64())
    columns = [_encoded(records["x_SourceId"]).take(at), records["x_SourceRow"].take(at)]
    columns += [_encoded(pa.array(values, pa.string())).take(entry) for values in per_fill.values()]
    return pa.Table.from_arrays(columns, schema=ENRICHMENT_SCHEMA)


def _encoded(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``column`` as one dictionary-encoded array (:data:`ENCODED_TEXT`)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return (array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)).cast(ENCODED_TEXT)


def _store_provenance(provenance: pa.Table, root: Path, period: Period) -> Path:
    """The enrichment table in the cache, named by its content, for the exporter to copy."""
    digest = table_sha256(provenance).removeprefix("sha256:")[:24]
    directory = root / "enrichment" / str(period) / "applied"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.parquet"
    if not path.exists():
        write_table_atomic(provenance, path)
    return path
