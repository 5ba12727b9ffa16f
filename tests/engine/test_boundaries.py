"""Conservation at the boundaries: money outside the run period, sources named twice, and
shares that a driver or plugin would send where the policy never said. Each case is a
located error, or a run whose manifest holds input + carried = allocated + deferred."""

from __future__ import annotations

import csv
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.engine.duck import LEDGER_ROWS, DuckDBPlane
from chargeback_engine.engine.runner import Engine
from chargeback_engine.errors import ConservationError, InputError
from tests.engine.helpers import line_items, make_policy

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "acme.yaml"
SAMPLE = REPO / "policies" / "data" / "acme-focus-2026-10.csv"


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["run", "--policy", str(POLICY), *args])


def _sample_total(column: str = "BilledCost") -> Decimal:  # the column acme.yaml allocates
    with SAMPLE.open(encoding="utf-8") as handle:
        return sum((Decimal(row[column]) for row in csv.DictReader(handle)), Decimal(0))


def _holds(manifest: dict) -> None:
    for totals in manifest["totals"].values():
        assert Decimal(totals["allocated"]) + Decimal(totals["deferred"]) == Decimal(totals["input"]) + Decimal(
            totals["carried"]
        )


def test_a_period_with_no_line_of_its_own_is_refused(tmp_path: Path) -> None:
    for period in ("2026-11", "2027-06", "9999-12"):
        result = _run("--input", str(SAMPLE), "--period", period, "--out", str(tmp_path / period))
        assert result.exit_code == 1, result.output
        assert f"no line item is charged in {period}: the inputs hold 2026-10" in result.output
        assert not (tmp_path / period).exists()


def _month_with_a_september_upfront_charge(tmp_path: Path) -> Path:
    rows = list(csv.DictReader(SAMPLE.open(encoding="utf-8")))
    upfront = next(r for r in rows if r["ChargeCategory"] == "Purchase")
    september = {**upfront, "ChargePeriodStart": "2026-09-01T00:00:00Z"}
    path = tmp_path / "with-september.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, september])
    return path


def test_a_line_outside_the_run_period_is_located_unless_the_policy_charges_it(tmp_path: Path) -> None:
    month = _month_with_a_september_upfront_charge(tmp_path)
    result = _run("--input", str(month), "--period", "2026-10", "--out", str(tmp_path / "refused"))
    assert result.exit_code == 1
    assert f"{month}: row 601: ChargePeriodStart is in 2026-09, not in the run period 2026-10" in result.output
    assert "spec.out_of_period: charge-to-run-period" in result.output

    policy = tmp_path / "policy" / "acme.yaml"
    shutil.copytree(REPO / "policies", tmp_path / "policy")
    policy.write_text(
        POLICY.read_text(encoding="utf-8").replace("\nspec:\n", "\nspec:\n  out_of_period: charge-to-run-period\n", 1),
        encoding="utf-8",
    )
    out = tmp_path / "charged"
    result = CliRunner().invoke(
        main, ["run", "--policy", str(policy), "--input", str(month), "--period", "2026-10", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    _holds(manifest)
    usd = manifest["totals"]["USD"]
    assert Decimal(usd["carried"]) == 0
    # The September purchase's parts up to October are charged to October (catch-up), the rest deferred.
    baseline = Engine(POLICY).run([SAMPLE], "2026-10").totals()["USD"]
    extra = Decimal(usd["input"]) - baseline["input"]
    assert extra > 0
    assert Decimal(usd["allocated"]) - baseline["allocated"] + Decimal(usd["deferred"]) - baseline["deferred"] == extra
    assert Decimal(usd["allocated"]) - baseline["allocated"] > extra / 12  # two monthly parts, not one


@pytest.mark.parametrize("naming", ["twice", "dot-slash", "absolute", "symlink", "folder-and-file"])
def test_one_source_is_read_once_however_it_is_named(tmp_path: Path, naming: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "month.csv")
    os.chdir(tmp_path)
    names = {
        "twice": ["data/month.csv", "data/month.csv"],
        "dot-slash": ["data/month.csv", "./data/month.csv"],
        "absolute": ["data/month.csv", str(folder / "month.csv")],
        "symlink": ["data/month.csv", "link.csv"],
        "folder-and-file": ["data", "data/month.csv"],
    }[naming]
    if naming == "symlink":
        (tmp_path / "link.csv").symlink_to(folder / "month.csv")
    result = _run(*[arg for name in names for arg in ("--input", name)], "--period", "2026-10", "--out", "out")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [i["rows"] for i in manifest["inputs"]] == [600]
    assert Decimal(manifest["totals"]["USD"]["input"]) == _sample_total()
    _holds(manifest)


def _shifted(path: Path, month: str) -> Path:
    """The sample month moved to the next month, as a provider would bill it."""
    rows = list(csv.DictReader(SAMPLE.open(encoding="utf-8")))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: v.replace("2026-11-01", "2026-12-01")
                    .replace("2026-10-31", "2026-10-30")
                    .replace("2026-10", month)
                    if k.endswith(("Start", "End"))
                    else v
                    for k, v in row.items()
                }
            )
    return path


def test_a_schedule_carried_twice_is_carried_once(tmp_path: Path) -> None:
    assert _run("--input", str(SAMPLE), "--period", "2026-10", "--out", str(tmp_path / "oct")).exit_code == 0
    schedule = tmp_path / "oct" / "schedule.parquet"
    november = _shifted(tmp_path / "nov.csv", "2026-11")
    runs = {"once": ["--carry", str(schedule)], "twice": ["--carry", str(schedule), "--carry", str(schedule)]}
    for name, carry in runs.items():
        result = _run("--input", str(november), "--period", "2026-11", "--out", str(tmp_path / name), *carry)
        assert result.exit_code == 0, result.output
    manifests = [json.loads((tmp_path / name / "manifest.json").read_text()) for name in runs]
    carried = [m["totals"]["USD"]["carried"] for m in manifests]
    assert carried[0] == carried[1] and Decimal(carried[0]) > 0
    for manifest in manifests:
        _holds(manifest)


def _driver_policy(tmp_path: Path, rows: str):  # type: ignore[no-untyped-def]
    (tmp_path / "usage.csv").write_text("period,cost_center,quantity\n" + rows, encoding="utf-8")
    return make_policy(
        {
            "currency": "USD",
            "cost_centers": [{"id": "CC-1"}, {"id": "CC-2"}],
            "drivers": {"usage": {"file": "usage.csv"}},
            "rules": [
                {"id": "by-usage", "priority": 1, "when": {}, "allocate": {"method": "proportional", "driver": "usage"}}
            ],
        },
        path=str(tmp_path / "policy.yaml"),
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "2026-10,CC-1,3\n2026-10,CC-404,1\n",
            "rule 'by-usage' (method 'proportional') allocates to undeclared cost center(s) 'CC-404'",
        ),
        ("2026-10,CC-1,3\n2026-10,CC-2,-1\n", "driver 'usage': data row 2 (CC-2, 2026-10): quantity -1 is negative"),
        ("2026-10,CC-1,NaN\n", "driver 'usage': data row 1 (CC-1, 2026-10): quantity NaN is not a finite number"),
    ],
)
def test_a_driver_cannot_send_money_where_the_policy_did_not_say(tmp_path: Path, rows: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        Engine(_driver_policy(tmp_path, rows)).run([line_items([{"EffectiveCost": "10"}])], "2026-10")
    assert message in str(raised.value)


def _pool_policy(leftovers: str | None):  # type: ignore[no-untyped-def]
    """A rule feeds pool POOL-NET, which has no stage: money no stage will ever move."""
    spec = {
        "currency": "USD",
        "cost_centers": [{"id": "CC-1"}, {"id": "CC-2"}, {"id": "POOL-NET", "shared": True}],
        "rules": [
            {
                "id": "network",
                "priority": 1,
                "when": {},
                "allocate": {"method": "fixed", "splits": {"CC-1": "0.75", "POOL-NET": "0.25"}},
            }
        ],
    }
    return make_policy(spec | ({"pool_leftovers": leftovers} if leftovers else {}))


def test_money_left_in_a_shared_pool_stops_the_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"shared pool POOL-NET still holds 12\.5 USD after the last stage"):
        Engine(_pool_policy(None)).run([line_items([{"EffectiveCost": "50"}])], "2026-10", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_policy_may_send_pool_leftovers_to_the_unallocated_bucket() -> None:
    result = Engine(_pool_policy("unallocated")).run([line_items([{"EffectiveCost": "50"}])], "2026-10")
    summary = {cc: amount for cc, _, amount in result.summary()}
    assert summary["POOL-NET"] == 0 and summary["UNALLOCATED"] == Decimal("12.5") and summary["CC-1"] == Decimal("37.5")
    reasons = result.decisions["reason"].to_pylist()
    assert "left in shared pool POOL-NET after the last stage (pool_leftovers: unallocated)" in reasons


def test_amounts_whose_sum_the_ledger_cannot_hold_are_refused_before_allocating() -> None:
    policy = make_policy(
        {
            "currency": "USD",
            "cost_centers": [{"id": "CC-1"}],
            "rules": [
                {"id": "all", "priority": 1, "when": {}, "allocate": {"method": "direct", "cost_center": "CC-1"}}
            ],
        }
    )
    lines = line_items([{"EffectiveCost": "90000000000000000000"}, {"EffectiveCost": "-90000000000000000000"}] * 2)
    with pytest.raises(
        InputError,
        match=r"amounts add up to 3\.600000E\+20 in absolute value; the ledger adds "
        r"amounts below 1E\+20",
    ):
        Engine(policy).run([lines], "2026-10")


class _PlaneThatLosesARowAfterTheCheck(DuckDBPlane):
    """A data plane with a bug the per-account balance check cannot see: it loses a ledger
    row after that check, as it hands the ledger over. The manifest's identity must."""

    def finish(self):  # type: ignore[no-untyped-def]
        self._con.execute(f"DELETE FROM {LEDGER_ROWS} WHERE rowid = (SELECT max(rowid) FROM {LEDGER_ROWS})")
        return super().finish()


def test_the_manifest_identity_is_checked_on_every_run_and_a_breach_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConservationError, match=r"money is not conserved in USD: allocated .* \+ deferred .* != input"):
        Engine(POLICY, plane=_PlaneThatLosesARowAfterTheCheck).run([SAMPLE], "2026-10", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    _holds({"totals": Engine(POLICY).run([SAMPLE], "2026-10").totals()})  # the same run, without the bug
