"""``chargeback run``, ``explain`` and ``test`` through the real CLI."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from chargeback_engine import Engine, hookimpl
from chargeback_engine.cli import main
from chargeback_engine.engine.policytest import run_policy_tests
from chargeback_engine.plugins import get_plugin_manager

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
SAMPLE = POLICIES / "data" / "acme-focus-2026-10.csv"


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The README's main job on the bundled sample month."""
    out = tmp_path_factory.mktemp("demo")
    result = Engine(POLICIES / "acme.yaml").run([SAMPLE], "2026-10", out=out)
    return result, out


def test_the_example_policy_allocates_the_sample_month_exactly(sample_run) -> None:  # type: ignore[no-untyped-def]
    result, out = sample_run
    billed = sum(Decimal(line.split('"')[1]) for line in SAMPLE.read_text().splitlines()[1:])
    totals = result.totals()["USD"]
    assert totals["input"] == billed == totals["allocated"] + totals["deferred"]
    methods = set(result.ledger["method"].to_pylist())
    assert {"amortized", "proportional", "even", "direct", "tiered", "fixed", "tag"} <= methods
    assert {1, 2} <= set(result.ledger["stage"].to_pylist())
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0] == "cost_center,currency,amount" and any(line.startswith("UNALLOCATED,USD,") for line in summary)


def test_explain_a_cost_center_down_to_rules_and_source_lines(sample_run) -> None:  # type: ignore[no-untyped-def]
    _, out = sample_run
    result = invoke("explain", str(out), "--cost-center", "CC-1004")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("cost center CC-1004: ")
    assert "rule by-tag (" in result.output and "acme.yaml:" in result.output
    assert "acme-focus-2026-10.csv row " in result.output and "reason: " in result.output


def test_explain_a_record_shows_every_stage(sample_run) -> None:  # type: ignore[no-untyped-def]
    result, out = sample_run
    pooled = next(r for r in result.ledger.to_pylist() if r["stage"] == 2)
    text = invoke("explain", str(out), "--record", pooled["record_id"])
    assert text.exit_code == 0, text.output
    assert "stage 0" in text.output and "stage 2" in text.output and "from CC-9000" in text.output
    assert "rule stage-2-cc-9000" in text.output


def test_explain_errors(sample_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, out = sample_run
    assert invoke("explain", str(out), "--record", "nope").exit_code == 1
    assert invoke("explain", str(out)).exit_code == 2
    missing = invoke("explain", str(tmp_path), "--cost-center", "X")
    assert missing.exit_code == 1 and "allocations.parquet: not found" in missing.output


def test_policy_tests_of_the_examples_pass() -> None:
    result = invoke("test", str(POLICIES), "--fail-on-empty")
    assert result.exit_code == 0, result.output
    assert result.output.count("PASS  ") >= 10 and "0 failed" in result.output


def test_observer_hooks_see_every_policy_test_case() -> None:
    """``chargeback test`` runs the engine with the plugin manager, so observers fire there too."""
    seen: list[str] = []

    class Recorder:
        @hookimpl
        def chargeback_decisions_recorded(self, run_id: str, decisions: pa.Table) -> None:
            seen.append(run_id)

    plugins = get_plugin_manager()
    plugins.register(Recorder(), name="recorder")
    results = run_policy_tests([POLICIES], plugins)
    assert results and all(r.passed for r in results)
    assert len(seen) == len(results)


def test_a_failing_case_is_reported_and_fails_the_command(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "acme.yaml", tmp_path / "acme.yaml")
    shutil.copytree(POLICIES / "drivers", tmp_path / "drivers")
    (tmp_path / "acme_test.yaml").write_text(
        "cases:\n"
        "  - name: wrong on purpose\n"
        "    line_items: [{ServiceName: Amazon EC2, BilledCost: '5.00'}]\n"
        "    expect: {CC-1001: '5.00'}\n"
    )
    text = invoke("test", str(tmp_path))
    assert text.exit_code == 1
    assert "FAIL  " in text.output and "CC-1001: expected 5.00, got 0" in text.output
    assert "UNALLOCATED: expected 0, got 5.0000000000" in text.output
    as_json = json.loads(invoke("test", str(tmp_path), "--format", "json").output)
    assert as_json["failed"] == 1 and as_json["cases"][0]["status"] == "FAIL"


def test_fail_on_empty(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "acme.yaml", tmp_path / "acme.yaml")
    assert invoke("test", str(tmp_path)).exit_code == 0
    assert invoke("test", str(tmp_path), "--fail-on-empty").exit_code == 1


def test_run_names_a_missing_collector_and_writes_nothing(tmp_path: Path) -> None:
    result = invoke(
        "--block-plugin",
        "focus-files",
        "run",
        "--policy",
        str(POLICIES / "acme.yaml"),
        "--input",
        str(SAMPLE),
        "--period",
        "2026-10",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.exit_code == 1 and "no collector 'focus-files'" in result.output
    assert not (tmp_path / "out").exists()


def test_the_readme_main_job_prints_a_cost_center_summary(tmp_path: Path) -> None:
    result = invoke(
        "run",
        "--policy",
        str(POLICIES / "acme.yaml"),
        "--input",
        str(SAMPLE),
        "--period",
        "2026-10",
        "--out",
        str(tmp_path / "demo"),
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["cost", "center", "amount"]
    assert any(line.startswith("CC-1001 Payments ") and line.endswith(" USD") for line in lines)
    assert any(line.startswith("UNALLOCATED ") for line in lines)
    assert any(line.startswith("deferred ") for line in lines) and lines[-1].startswith("run r-")
    assert (tmp_path / "demo" / "manifest.json").exists()


def test_run_without_inputs_or_sources_says_so_and_writes_nothing(tmp_path: Path) -> None:
    result = invoke(
        "run", "--policy", str(POLICIES / "acme.yaml"), "--period", "2026-10", "--out", str(tmp_path / "out")
    )
    assert result.exit_code == 1 and "no line items" in result.output
    assert not (tmp_path / "out").exists()


def test_run_writes_the_default_outputs_and_those_asked_for(tmp_path: Path) -> None:
    args = ["run", "--policy", str(POLICIES / "acme.yaml"), "--input", str(SAMPLE), "--period", "2026-10", "--out"]
    result = invoke(*args, str(tmp_path / "default"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "default").iterdir() if not p.name.startswith(".")) == [
        "allocations.parquet",
        "decisions.parquet",
        "manifest.json",
        "schedule.parquet",
        "summary.csv",
    ]
    result = invoke(*args, str(tmp_path / "more"), "--export", "allocations-csv", "--export", "focus-allocated")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "more").iterdir() if not p.name.startswith(".")) == [
        "allocations.csv",
        "allocations.parquet",
        "decisions.parquet",
        "focus_allocated.parquet",
        "manifest.json",
        "schedule.parquet",
        "summary.csv",
    ]
    for name in ("allocations.parquet", "decisions.parquet", "summary.csv"):  # asking for more changes nothing else
        assert (tmp_path / "more" / name).read_bytes() == (tmp_path / "default" / name).read_bytes()


def test_the_policy_names_exports_in_spec_exports(tmp_path: Path) -> None:
    text = (POLICIES / "acme.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "acme.yaml"
    policy.write_text(
        text.replace("\nspec:\n", "\nspec:\n  exports:\n    - {exporter: allocations-csv}\n", 1), encoding="utf-8"
    )
    for driver in (POLICIES / "drivers").iterdir():
        (tmp_path / "drivers").mkdir(exist_ok=True)
        (tmp_path / "drivers" / driver.name).write_bytes(driver.read_bytes())
    result = invoke(
        "run", "--policy", str(policy), "--input", str(SAMPLE), "--period", "2026-10", "--out", str(tmp_path / "out")
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "allocations.csv").exists()


def test_an_unknown_exporter_fails_before_anything_runs(tmp_path: Path) -> None:
    result = invoke(
        "run",
        "--policy",
        str(POLICIES / "acme.yaml"),
        "--input",
        str(SAMPLE),
        "--period",
        "2026-10",
        "--out",
        str(tmp_path / "out"),
        "--export",
        "xlsx",
    )
    assert result.exit_code != 0 and "no exporter 'xlsx' is registered" in result.output
    assert not (tmp_path / "out").exists()
