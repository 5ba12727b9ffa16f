"""Finance's showback/chargeback switch reads the figures ``chargeback report tags`` reports."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.costdb.tables import EXACT_DIGITS, ledger_lines, run_tag_compliance, runs
from chargeback_engine.finance import statement
from chargeback_engine.finance.audit import verify_audit_chain
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.policy.loader import load_policies
from chargeback_engine.testing import line_items, make_engine, make_registry

POLICY = {
    "apiVersion": "chargeback/v1",
    "kind": "AllocationPolicy",
    "metadata": {"name": "tagged", "version": "1", "effective": {"from": "2026-01-01"}},
    "spec": {
        "currency": "USD",
        "cost_centers": [
            {"id": "CC-1", "name": "Payments", "mode": "auto"},
            {"id": "CC-2", "name": "Search", "mode": "auto"},
            {"id": "CC-3", "name": "Ads", "mode": "chargeback"},
        ],
        "tags": {"required": ["cost-center", "team"]},
        "rules": [{"id": "by-cost-center", "priority": 10, "allocate": {"method": "tag", "keys": ["cost-center"]}}],
    },
}


def month() -> list[dict]:
    """CC-1 carries every required tag; a third of CC-2's lines lack ``team``, though the
    cost-center tag allocates all of them; CC-3 is chargeback whatever its tags; some lines
    carry no cost-center at all."""
    lines = []
    for i in range(30):
        cc = f"CC-{i % 3 + 1}"
        tags = {"cost-center": cc} if cc == "CC-2" and i % 9 == 1 else {"cost-center": cc, "team": "t"}
        lines.append({"BilledCost": Decimal(f"{10 + i}.25"), "ResourceId": f"r-{i}", "Tags": tags})
    lines += [{"BilledCost": Decimal("7.50"), "ResourceId": "r-x", "Tags": {"team": "t"}}]
    return lines


def test_auto_mode_follows_the_tag_report(tmp_path: Path, db_url: str, monkeypatch) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps(POLICY), encoding="utf-8")
    [policy] = load_policies([path], make_registry(builtins=True)).policies
    out = tmp_path / "run"
    make_engine(policy, builtins=True).run([line_items(*month())], "2026-10", out=out)

    runner = CliRunner()
    tags = runner.invoke(main, ["report", "tags", "--run", str(out), "--policy", str(path), "--format", "json"])
    assert tags.exit_code == 0, tags.output
    reported = {c["key"]: c for c in json.loads(tags.output)["by_cost_center"]}
    assert reported["CC-1"]["pct_spend"] == "100.0" and Decimal(reported["CC-2"]["pct_spend"]) < 90

    monkeypatch.setenv("CHARGEBACK_DB", db_url)
    ingest = [
        "ledger",
        "ingest",
        "--ledger",
        str(out / "allocations.parquet"),
        "--manifest",
        str(out / "manifest.json"),
    ]
    recorded = runner.invoke(main, [*ingest, "--policy", str(path), "--period", "2026-10"])
    assert recorded.exit_code == 0, recorded.output

    engine = sa.create_engine(db_url)
    try:
        terms = statement(engine, "2026-10", FinanceSettings()).terms
        with engine.connect() as connection:
            stage0 = sa.select(ledger_lines.c.method).where(
                ledger_lines.c.cost_center == "CC-2", ledger_lines.c.stage == 0
            )
            assert set(connection.execute(stage0).scalars()) == {"tag"}  # by method alone, CC-2 is fully tagged
        for cc in ("CC-1", "CC-2"):
            figures = reported[cc]
            with localcontext() as ctx:
                ctx.prec = EXACT_DIGITS
                assert terms[cc].compliance == Decimal(figures["compliant_spend"]) / Decimal(figures["spend"])
            assert (100 * terms[cc].compliance).quantize(Decimal("0.1")) == Decimal(figures["pct_spend"])
        assert {cc: t.mode for cc, t in terms.items() if cc.startswith("CC-")} == {
            "CC-1": "chargeback",
            "CC-2": "showback",  # below the 90% threshold in the tag report
            "CC-3": "chargeback",  # declared, not auto
        }
        at_threshold = FinanceSettings(compliance_threshold=terms["CC-2"].compliance)
        assert statement(engine, "2026-10", at_threshold).terms["CC-2"].mode == "chargeback"

        assert verify_audit_chain(engine).ok  # the recorded figures are in the audit chain
        with engine.begin() as connection:  # a row slipped in by hand to lift CC-2
            run_key = connection.execute(sa.select(runs.c.run_key).where(runs.c.period == "2026-10")).scalar_one()
            forged = {"lines": 100, "compliant_lines": 100, "spend": Decimal(10**6), "compliant_spend": Decimal(10**6)}
            connection.execute(
                sa.insert(run_tag_compliance).values(run_key=run_key, cost_center="CC-2", currency="EUR", **forged)
            )
        assert any(
            p.startswith("run_tag_compliance") and "no audit record holds this row" in p
            for p in verify_audit_chain(engine).problems
        )
    finally:
        engine.dispose()
