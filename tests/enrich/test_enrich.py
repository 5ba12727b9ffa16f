"""Enrichment end to end: the bill's gaps filled from a CMDB, the unallocated share falling
by exactly the enriched lines, explain naming the source, and reruns reading the same snapshot."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chargeback_engine.engine.runner import DEFAULT_EXPORTERS
from chargeback_engine.enrich.explain_enrichment import explain_enrichment
from chargeback_engine.errors import InputError
from chargeback_engine.testing import line_items, make_engine, make_policy

#: What ``chargeback run`` writes: the built-ins and the enrichment table.
EXPORTERS = (*DEFAULT_EXPORTERS, "enrichment")
RULES = [{"id": "by-cost-center", "priority": 10, "allocate": {"method": "tag", "keys": ["cost-center"]}}]


def sample_month() -> tuple[list[dict], set[int]]:
    """60 lines; 18 (30%) lack cost-center; the CMDB knows the resources of 12 of those."""
    lines, untagged = [], set()
    for i in range(60):
        line = {"BilledCost": Decimal(f"{i + 1}.{i:02d}"), "ResourceId": f"i-{i:04d}", "SubAccountId": "111122223333"}
        if i % 10 < 3:  # 30% of the lines
            untagged.add(i)
            line["Tags"] = {"team": "web"}
        else:
            line["Tags"] = {"cost-center": f"CC-{i % 3 + 1}"}
        lines.append(line)
    return lines, untagged


def write_cmdb(path: Path, rows: dict[str, str]) -> None:
    path.write_text(
        "id,CostCenter,owner\n" + "".join(f"{rid},{cc},alice@example.com\n" for rid, cc in rows.items()),
        encoding="utf-8",
    )


@pytest.fixture
def month(tmp_path: Path):  # type: ignore[no-untyped-def]
    lines, untagged = sample_month()
    known = sorted(untagged)[: len(untagged) * 2 // 3]  # two thirds of the untagged lines
    write_cmdb(tmp_path / "cmdb.csv", {f"i-{i:04d}": "CC-2" for i in known})
    return lines, untagged, known


def policy_for(tmp_path: Path, **enrich):  # type: ignore[no-untyped-def]
    return make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}},
        enrich={
            "cache": "cache",
            "sources": [{"enricher": "files", "id": "cmdb", "path": str(tmp_path / "cmdb.csv")}],
            **enrich,
        },
    )


def unallocated(result) -> Decimal:  # type: ignore[no-untyped-def]
    return sum((amount for cc, _, amount in result.summary() if cc == "UNALLOCATED"), Decimal(0))


def test_the_unallocated_share_falls_by_the_enriched_lines(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    lines, untagged, known = month
    plain = make_engine(make_policy(builtins=True, rules=RULES), builtins=True).run([line_items(*lines)], "2026-10")
    enriched = make_engine(policy_for(tmp_path), builtins=True, exporters=EXPORTERS).run(
        [line_items(*lines)], "2026-10", out=tmp_path / "out"
    )
    cost = {i: lines[i]["BilledCost"] for i in range(60)}
    assert unallocated(plain) == sum(cost[i] for i in untagged)
    assert unallocated(enriched) == sum(cost[i] for i in untagged - set(known))
    assert unallocated(plain) - unallocated(enriched) == sum(cost[i] for i in known)
    cc2 = {cc: a for cc, _, a in enriched.summary()}["CC-2"]
    assert cc2 == sum(cost[i] for i in range(60) if i % 3 == 1 and i not in untagged) + sum(cost[i] for i in known)

    table = pq.read_table(tmp_path / "out" / "enrichment.parquet").to_pylist()
    assert sorted(r["x_SourceRow"] for r in table if r["tag"] == "cost-center") == [i + 1 for i in known]
    assert {(r["tag"], r["source"], r["enricher"], r["scope"]) for r in table} == {
        ("cost-center", "cmdb", "files", "resource"),
        ("owner", "cmdb", "files", "resource"),
    }
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {i["source_id"] for i in manifest["inputs"]} >= {"enrich:cmdb", "enrichment"}


def test_explain_names_the_enricher_and_snapshot(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    """Without the enrichment exporter, explain reads the table the manifest names in the cache."""
    lines, _, known = month
    make_engine(policy_for(tmp_path), builtins=True).run([line_items(*lines)], "2026-10", out=tmp_path / "out")
    ledger = pq.read_table(tmp_path / "out" / "allocations.parquet").to_pylist()
    record = next(r["record_id"] for r in ledger if r["source_row"] == known[0] + 1)
    text = explain_enrichment(tmp_path / "out", record)
    assert "tag cost-center = CC-2 from cmdb (files) snapshot 20" in text
    assert f"resource i-{known[0]:04d}" in text
    tagged = next(r["record_id"] for r in ledger if r["source_row"] == 4)  # line 3 carries its own cost-center
    assert explain_enrichment(tmp_path / "out", tagged) == ""


def test_a_rerun_reads_the_same_snapshot_until_a_fresh_one_is_taken(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    from chargeback_engine.enrich.apply import snapshots_for

    lines, _, known = month
    policy = policy_for(tmp_path)
    first = make_engine(policy, builtins=True, exporters=EXPORTERS).run(
        [line_items(*lines)], "2026-10", out=tmp_path / "a"
    )
    write_cmdb(tmp_path / "cmdb.csv", {f"i-{i:04d}": "CC-3" for i in known})  # the CMDB changes
    again = make_engine(policy, builtins=True, exporters=EXPORTERS).run(
        [line_items(*lines)], "2026-10", out=tmp_path / "b"
    )
    assert again.run_id == first.run_id
    for name in ("allocations.parquet", "decisions.parquet", "enrichment.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    engine = make_engine(policy, builtins=True)
    snapshots_for(policy, engine.registry, first.period, refresh=True)
    fresh = engine.run([line_items(*lines)], "2026-10")
    assert fresh.run_id != first.run_id
    assert {cc: a for cc, _, a in fresh.summary()}["CC-3"] > {cc: a for cc, _, a in first.summary()}["CC-3"]


def test_precedence_per_key_puts_the_inventory_before_the_bill(tmp_path: Path) -> None:
    (tmp_path / "cmdb.yaml").write_text(
        "resources:\n  i-1: {cost-center: CC-3}\naccounts:\n  '42': {cost-center: CC-1, team: platform}\n",
        encoding="utf-8",
    )
    policy = make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}},
        enrich={
            "cache": "cache",
            "sources": [{"enricher": "files", "id": "cmdb", "path": str(tmp_path / "cmdb.yaml")}],
            "precedence": {"keys": {"cost-center": ["cmdb", "bill"]}},
        },
    )
    items = line_items(
        {"BilledCost": "10", "ResourceId": "i-1", "SubAccountId": "42", "Tags": {"CostCenter": "CC-2"}},
        {"BilledCost": "5", "ResourceId": "i-2", "SubAccountId": "42", "Tags": {"team": "web"}},
    )
    result = make_engine(policy, builtins=True).run([items], "2026-10")
    tags = [json.loads(t) for t in result.records["Tags"].to_pylist()]
    assert tags == [{"cost-center": "CC-3", "team": "platform"}, {"cost-center": "CC-1", "team": "web"}]
    assert {cc: a for cc, _, a in result.summary() if a} == {"CC-3": Decimal(10), "CC-1": Decimal(5)}


def test_precedence_ids_are_checked_where_they_are_written(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    from chargeback_engine.errors import PolicyError

    with pytest.raises(PolicyError) as raised:
        policy_for(tmp_path, precedence={"default": ["bill", "inventry"], "keys": {"team": ["cmdb", "bil"]}})
    messages = [f"{d.path}: {d.message}" for d in raised.value.diagnostics]
    assert messages == [
        "$.spec.enrich.precedence.default[1]: 'inventry' is not bill or a source id (bill, cmdb)",
        "$.spec.enrich.precedence.keys.team[1]: 'bil' is not bill or a source id (bill, cmdb); did you mean 'bill'?",
    ]
    with pytest.raises(PolicyError, match=r"\$.spec.enrich.sources\[1\]: source id 'files' is used twice"):
        make_policy(
            builtins=True,
            directory=tmp_path,
            enrich={"sources": [{"enricher": "files", "path": "a.csv"}, {"enricher": "files", "path": "b.csv"}]},
        )


def test_a_policy_without_enrich_leaves_the_tags_alone(month) -> None:  # type: ignore[no-untyped-def]
    lines, _, _ = month
    result = make_engine(make_policy(builtins=True, rules=RULES), builtins=True).run([line_items(*lines)], "2026-10")
    assert all(i.source_id != "enrichment" for i in result.inputs)


def test_the_cli_takes_a_fresh_snapshot_and_explain_prints_the_source(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from chargeback_engine.cli import main

    lines, _, known = month
    policy = policy_for(tmp_path)
    pq.write_table(line_items(*lines), tmp_path / "bill.parquet")
    runner = CliRunner()
    taken = runner.invoke(main, ["enrich", "--policy", policy.path, "--period", "2026-10"])
    assert taken.exit_code == 0, taken.output
    assert "cmdb (files): 24 tag(s) at 20" in taken.output
    ran = runner.invoke(
        main,
        [
            "run",
            "--policy",
            policy.path,
            "--input",
            str(tmp_path / "bill.parquet"),
            "--period",
            "2026-10",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert ran.exit_code == 0, ran.output
    ledger = pq.read_table(tmp_path / "out" / "allocations.parquet").to_pylist()
    record = next(r["record_id"] for r in ledger if r["source_row"] == known[-1] + 1)
    explained = runner.invoke(main, ["explain", str(tmp_path / "out"), "--record", record])
    assert explained.exit_code == 0, explained.output
    stamp = taken.output.split(" at ")[1].split(" ")[0]
    assert f"tag cost-center = CC-2 from cmdb (files) snapshot {stamp}, resource i-{known[-1]:04d}" in explained.output


def test_a_corrupt_snapshot_is_a_located_error(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    lines, _, _ = month
    policy = policy_for(tmp_path)
    make_engine(policy, builtins=True).run([line_items(*lines)], "2026-10")
    [snapshot] = (tmp_path / "cache" / "enrichment" / "2026-10").glob("cmdb-*/*.parquet")
    snapshot.write_bytes(b"not parquet")
    with pytest.raises(InputError, match=f"{snapshot}: not a readable enrichment snapshot .*delete it"):
        make_engine(policy, builtins=True).run([line_items(*lines)], "2026-10")


def test_changing_a_source_s_options_takes_a_new_snapshot(tmp_path: Path, month) -> None:  # type: ignore[no-untyped-def]
    lines, _, known = month
    first = make_engine(policy_for(tmp_path), builtins=True).run([line_items(*lines)], "2026-10")
    (tmp_path / "other.csv").write_text(
        "id,CostCenter\n" + "".join(f"i-{i:04d},CC-3\n" for i in known), encoding="utf-8"
    )
    other = make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}},
        enrich={
            "cache": "cache",
            "sources": [{"enricher": "files", "id": "cmdb", "path": str(tmp_path / "other.csv")}],
        },
    )
    second = make_engine(other, builtins=True).run([line_items(*lines)], "2026-10")
    assert {cc: a for cc, _, a in second.summary()}["CC-3"] > {cc: a for cc, _, a in first.summary()}["CC-3"]
