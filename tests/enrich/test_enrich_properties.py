"""Enrichment per distinct key equals the same merge done line by line, for any bill and inventory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback_engine.enrich.apply import BILL, _enrich, _Precedence
from chargeback_engine.enrich.model import TagRecord
from chargeback_engine.enrich.snapshots import Snapshot, snapshot_table
from chargeback_engine.policy.match import TagNormalizer
from chargeback_engine.testing import line_items

KEYS = st.sampled_from(["cost-center", "CostCenter", "team", "Team ", "owner"])
VALUES = st.sampled_from(["a", "b", " c", ""])
TAGS = st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=3))
RESOURCES = st.sampled_from([None, "i-1", "I-2", "/subscriptions/s/resourceGroups/RG/providers/x/y/vm"])
ACCOUNTS = st.sampled_from([None, "111", "222"])
NORMALIZER = TagNormalizer(aliases={"costcenter": "cost-center"})


def records() -> st.SearchStrategy[list[TagRecord]]:
    scoped = st.sampled_from(
        [
            ("resource", "i-1"),
            ("resource", "i-2"),
            ("resource-group", "/subscriptions/s/resourcegroups/rg"),
            ("account", "111"),
            ("account", "222"),
        ]
    )
    return st.lists(
        st.builds(
            lambda sk, tags: TagRecord(sk[0], sk[1], tags),
            scoped,
            st.dictionaries(KEYS, st.sampled_from(["x", "y"]), min_size=1, max_size=2),
        ),
        max_size=6,
    )


def oracle(
    tags: dict | None,
    resource: str | None,
    account: str | None,
    inventories: list[tuple[str, list[TagRecord]]],
    order: tuple[str, ...],
) -> dict | None:
    """The merge of one line, written the slow obvious way."""
    found: dict[str, dict[str, str]] = {}  # canonical tag -> source -> value
    for source, recs in inventories:
        keys = {
            "resource": (resource or "").casefold(),
            "account": (account or "").casefold(),
            "resource-group": "/".join((resource or "").casefold().split("/")[:5]),
        }
        for scope in ("account", "resource-group", "resource"):
            raw: dict[str, str] = {}
            for r in recs:
                if r.scope == scope and r.key.casefold() == keys[scope] and keys[scope]:
                    raw.update(r.tags)
            for k, v in NORMALIZER.normalize(raw).items():
                found.setdefault(k, {})[source] = v
    bill = dict(tags or {})
    present = {NORMALIZER.normalize_key(k) for k, v in bill.items() if v is not None and str(v).strip()}
    changed = False
    for tag in sorted(found):
        for source in order:
            if source == BILL and tag in present:
                break
            if source != BILL and source in found[tag]:
                for k in [k for k in bill if NORMALIZER.normalize_key(k) == tag and str(bill[k]).strip()]:
                    del bill[k]
                bill[tag] = found[tag][source]
                changed = True
                break
    return bill if changed else tags


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TAGS, RESOURCES, ACCOUNTS), min_size=1, max_size=12), records(), records(), st.booleans())
def test_per_key_enrichment_equals_the_line_by_line_merge(lines, first, second, inventory_first) -> None:  # type: ignore[no-untyped-def]
    taken = datetime(2026, 10, 31, 23, tzinfo=UTC)
    snapshots = [
        Snapshot("inv", "files", taken, Path("inv"), snapshot_table(first)),
        Snapshot("acct", "files", taken, Path("acct"), snapshot_table(second)),
    ]
    order = ("inv", BILL, "acct") if inventory_first else (BILL, "inv", "acct")
    table = line_items(*({"BilledCost": "1", "Tags": t, "ResourceId": r, "SubAccountId": a} for t, r, a in lines))
    if any(t is None for t, _, _ in lines):  # line_items writes {} for None: put the nulls back
        table = table.set_column(
            table.schema.get_field_index("Tags"),
            "Tags",
            pa.array([None if t is None else json.dumps(t) for t, _, _ in lines], pa.string()),
        )
    tags, provenance = _enrich(
        table, snapshots, _Precedence({"precedence": {"default": list(order)}}, snapshots), NORMALIZER
    )
    inventories = [("inv", list(first)), ("acct", list(second))]
    got = [None if t is None else json.loads(t) for t in tags.to_pylist()]
    expected = [oracle(t, r, a, inventories, order) for t, r, a in lines]
    assert got == expected
    filled_lines = {row - 1 for row in provenance["x_SourceRow"].to_pylist()}
    assert filled_lines == {i for i, (t, _, _) in enumerate(lines) if expected[i] is not t}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=30), st.booleans()
)
def test_groups_give_every_line_its_distinct_row(rows, huge) -> None:  # type: ignore[no-untyped-def]
    """Both ways of grouping: one combined int64 key, and rows compared whole when the key would overflow."""
    import numpy as np

    from chargeback_engine.enrich.apply import _groups

    columns = [np.array([r[i] for r in rows], dtype=np.int64) for i in range(3)]
    sizes = [2**30] * 3 if huge else [4, 4, 4]
    distinct, inverse = _groups(columns, sizes)
    assert [tuple(distinct[g]) for g in inverse] == rows
    assert len({tuple(d) for d in distinct.tolist()}) == len(distinct) == len(set(rows))
