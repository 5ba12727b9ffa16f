"""The daily pipeline: collect stores versions (nothing when unchanged, a restatement as a new
one, a crash leaves the previous one), and ``run --period current`` runs from the cache."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.errors import InputError
from chargeback_engine.periods import Period
from chargeback_engine.pipeline import cached_sources, collect, current_period
from chargeback_engine.testing import line_items, make_engine, make_policy, make_registry

RULES = [{"id": "by-team", "priority": 1, "allocate": {"method": "tag", "keys": ["team"]}}]
OCTOBER = Period(2026, 10)


def write_bill(path: Path, period: Period, amounts: list[str]) -> None:
    pq.write_table(
        line_items(
            *({"BilledCost": a, "Tags": {"team": "CC-1" if i % 2 else "CC-2"}} for i, a in enumerate(amounts)),
            period=period,
        ),
        path,
    )


@pytest.fixture
def policy(tmp_path: Path):  # type: ignore[no-untyped-def]
    write_bill(tmp_path / "bill.parquet", OCTOBER, ["1.10", "2.20", "3.30"])
    return make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        sources=[{"collector": "focus-files", "path": str(tmp_path / "bill.parquet")}],
    )


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_collecting_twice_without_change_writes_nothing(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry(builtins=True)
    [first] = collect(policy, registry, OCTOBER, tmp_path / "cache")
    assert first.stored
    before = files(tmp_path / "cache")
    [again] = collect(policy, registry, OCTOBER, tmp_path / "cache")
    assert not again.stored and again.version == first.version
    assert files(tmp_path / "cache") == before  # not even latest.json was rewritten


def test_a_restated_month_is_a_new_version(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry(builtins=True)
    [first] = collect(policy, registry, OCTOBER, tmp_path / "cache")
    write_bill(tmp_path / "bill.parquet", OCTOBER, ["1.10", "2.20", "3.31"])  # the provider restates
    [restated] = collect(policy, registry, OCTOBER, tmp_path / "cache")
    assert restated.stored and restated.version != first.version
    assert first.path.exists() and restated.path.exists() and first.path != restated.path
    [latest] = cached_sources(OCTOBER, tmp_path / "cache")
    assert latest.version == restated.version
    assert sum(latest.table["BilledCost"].to_pylist()) == Decimal("6.61")


def test_a_crashed_collect_leaves_the_previous_version_usable(tmp_path: Path, policy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    registry = make_registry(builtins=True)
    [first] = collect(policy, registry, OCTOBER, tmp_path / "cache")
    write_bill(tmp_path / "bill.parquet", OCTOBER, ["9.99"])

    def crash(table, where, **kwargs):  # type: ignore[no-untyped-def]
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr("chargeback_engine.enrich.snapshots.pq.write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        collect(policy, registry, OCTOBER, tmp_path / "cache")
    monkeypatch.undo()
    [latest] = cached_sources(OCTOBER, tmp_path / "cache")
    assert latest.version == first.version
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".")]  # no half file left


def test_run_current_uses_the_latest_collected_versions(tmp_path: Path) -> None:
    month = current_period()
    write_bill(tmp_path / "bill.parquet", month, ["10", "20", "30", "40"])
    policy = make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        cost_centers=["CC-1", "CC-2"],
        sources=[{"collector": "focus-files", "path": str(tmp_path / "bill.parquet")}],
        enrich={"cache": "cache", "sources": [{"enricher": "files", "path": str(tmp_path / "c.csv")}]},
    )
    (tmp_path / "c.csv").write_text("id\n", encoding="utf-8")
    runner = CliRunner()
    collected = runner.invoke(main, ["collect", "--policy", policy.path, "--period", "current"])
    assert collected.exit_code == 0, collected.output
    assert ": stored version " in collected.output
    assert (
        ": unchanged version "
        in runner.invoke(main, ["collect", "--policy", policy.path, "--period", "current"]).output
    )
    live = make_engine(policy, builtins=True).run([], month)
    (tmp_path / "bill.parquet").unlink()  # the run must not call the collector again
    ran = runner.invoke(main, ["run", "--policy", policy.path, "--period", "current", "--out", str(tmp_path / "out")])
    assert ran.exit_code == 0, ran.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["period"] == str(month) and manifest["run_id"] == live.run_id
    assert "CC-1" in ran.output and "100" in ran.output


def test_run_current_without_a_collect_says_what_to_do(tmp_path: Path, policy, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chargeback_engine.pipeline import month_to_date

    monkeypatch.setenv("CHARGEBACK_CACHE_DIR", str(tmp_path / "empty-cache"))
    engine = make_engine(policy, builtins=True)
    with pytest.raises(InputError, match="nothing collected for .* run chargeback collect --period"):
        month_to_date(engine, current_period())


def test_a_policy_without_sources_has_nothing_to_collect(tmp_path: Path) -> None:
    policy = make_policy(builtins=True, rules=RULES)
    with pytest.raises(InputError, match="has no spec.sources to collect"):
        collect(policy, make_registry(builtins=True), OCTOBER, tmp_path)
