"""Every command that prints results prints JSON with ``--format json``, in its documented shape.

The shapes are the JSON Schemas in ``schemas/cli/``; docs/cli-output.md describes them.
One real month goes through the whole path: run, explain, ledger ingest, close, invoices,
disputes, journal, audit, budgets and alerts.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from chargeback_engine.cli import main
from chargeback_engine.insight import write_sample
from chargeback_engine.money import LEDGER_SCALE

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas" / "cli"
POLICY = ROOT / "policies" / "acme.yaml"
SAMPLE = ROOT / "policies" / "data" / "acme-focus-2026-10.csv"
REGISTRY = Registry().with_resources(
    (path.name, Resource.from_contents(json.loads(path.read_text(encoding="utf-8"))))
    for path in SCHEMAS.glob("*.schema.json")
)


def validate(document: object, shape: str) -> None:
    schema = json.loads((SCHEMAS / f"{shape}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator(schema, registry=REGISTRY).validate(document)


def invoke(*args: str | Path) -> object:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run") / "out"
    summary = invoke(
        "run", "--policy", POLICY, "--input", SAMPLE, "--period", "2026-10", "--out", out, "--format", "json"
    )
    return out, summary


@pytest.fixture
def books(month: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cost database with the month recorded."""
    out, _ = month
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    ingested = invoke(
        "ledger",
        "ingest",
        "--ledger",
        out / "allocations.parquet",
        "--policy",
        POLICY,
        "--period",
        "2026-10",
        "--manifest",
        out / "manifest.json",
        "--decisions",
        out / "decisions.parquet",
        "--format",
        "json",
    )
    validate(ingested, "ledger-ingest")
    assert ingested["committed"] is True and ingested["period"] == "2026-10"
    return tmp_path


def test_run_prints_exact_amounts_that_add_up(month: tuple[Path, dict]) -> None:
    _, summary = month
    validate(summary, "run")
    allocated = sum(Decimal(c["amount"]) for c in summary["cost_centers"])
    assert allocated == Decimal(summary["totals"]["USD"]["allocated"])
    assert {"cost_center": "CC-1001", "name": "Payments"}.items() <= summary["cost_centers"][0].items()


def test_explain_cost_center_and_record(month: tuple[Path, dict]) -> None:
    out, summary = month
    found = invoke("explain", out, "--cost-center", "CC-1004", "--format", "json")
    validate(found, "explain-cost-center")
    expected = next(c["amount"] for c in summary["cost_centers"] if c["cost_center"] == "CC-1004")
    assert Decimal(found["totals"][0]["amount"]) == Decimal(expected)
    record = found["rules"][0]["top_lines"][0]["record_id"]
    explained = invoke("explain", out, "--record", record, "--format", "json")
    validate(explained, "explain-record")
    assert explained["record_id"] == record


def test_report_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy that requires the cost-center tag: its runs keep the FOCUS lines the report reads,
    and the tagging KPI is the report's headline."""
    shutil.copytree(POLICY.parent / "drivers", tmp_path / "drivers")
    aliases = "    aliases: {costcenter: cost-center}\n"
    text = POLICY.read_text(encoding="utf-8").replace(aliases, aliases + "    required: [cost-center]\n")
    (tmp_path / "acme.yaml").write_text(text, encoding="utf-8")
    policy, out = tmp_path / "acme.yaml", tmp_path / "runs" / "2026-10"
    invoke("run", "--policy", policy, "--input", SAMPLE, "--period", "2026-10", "--out", out, "--format", "json")
    report = invoke("report", "tags", "--run", out, "--policy", policy, "--format", "json")
    validate(report, "report-tags")
    [total] = report["total"]
    assert Decimal(total["spend"]) == sum(Decimal(c["spend"]) for c in report["by_account"])
    assert report["required"] == ["cost-center"] and total["lines"] == 600
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    kpis = invoke("report", "kpis", "--runs", tmp_path / "runs", "--policy", policy, "--format", "json")
    validate(kpis, "report-kpis")
    assert (kpis["tagging"]["lines"], kpis["tagging"]["by_spend_pct"]) == (total["lines"], total["pct_spend"])


def test_validate_and_test(tmp_path: Path) -> None:
    valid = invoke("validate", POLICY, "--format", "json")
    validate(valid, "validate")
    assert valid["valid"] is True
    (tmp_path / "acme.yaml").write_text(
        POLICY.read_text(encoding="utf-8").replace("    - id: databases\n", "    - id: platform\n"), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "acme.yaml"), "--format", "json"])
    assert result.exit_code == 1
    invalid = json.loads(result.stdout)
    validate(invalid, "validate")
    assert invalid["valid"] is False
    assert {
        "driver file 'drivers/db-connections.csv' not found next to the policy",
        "duplicate rule id 'platform' (first used on line 68)",
    } == {d["message"] for d in invalid["diagnostics"]}
    for command in ("validate", POLICY), ("test", POLICY.parent):  # table, like every command, is for people
        table = CliRunner().invoke(main, [*map(str, command), "--format", "table"])
        assert (
            table.exit_code == 0
            and table.output
            and table.output == CliRunner().invoke(main, list(map(str, command))).output
        )
    cases = invoke("test", POLICY.parent, "--format", "json")
    validate(cases, "test")
    assert cases["failed"] == 0 and cases["passed"] == len(cases["cases"]) > 0


def test_finance_commands(books: Path, month: tuple[Path, dict]) -> None:
    validate(invoke("period", "status", "--format", "json"), "period-status")
    draft = invoke("invoice", "list", "--period", "2026-10", "--format", "json")
    validate(draft, "invoice-list")
    assert draft["closed"] is False
    closed = invoke("period", "close", "--period", "2026-10", "--format", "json")
    validate(closed, "period-close")
    listed = invoke("invoice", "list", "--period", "2026-10", "--format", "json")
    validate(listed, "invoice-list")
    assert listed["closed"] is True and listed["invoices"] == closed["invoices"]
    [status] = invoke("period", "status", "--format", "json")
    assert status == {
        "period": "2026-10",
        "closed": True,
        "run_key": status["run_key"],
        "closed_run": status["run_key"],
        "restated_by": None,
    }

    invoice = listed["invoices"][0]
    submitted = invoke(
        "dispute",
        "submit",
        "--period",
        "2026-10",
        "--cost-center",
        invoice["cost_center"],
        "--type",
        "usage",
        "--amount",
        "1.50",
        "--description",
        "double counted",
        "--by",
        "alice",
        "--at",
        "2026-11-02T10:00:00Z",
        "--format",
        "json",
    )
    validate(submitted, "dispute")
    validate(invoke("dispute", "review", submitted["dispute_id"], "--by", "bob", "--format", "json"), "dispute")
    approved = invoke("dispute", "approve", submitted["dispute_id"], "--by", "carol", "--format", "json")
    validate(approved, "dispute")
    assert approved["status"] == "approved"
    disputes = invoke("dispute", "list", "--format", "json")
    validate(disputes, "dispute-list")
    assert [d["dispute_id"] for d in disputes] == [submitted["dispute_id"]]
    assert disputes[0]["cost_center_name"] == invoice["cost_center_name"] != invoice["cost_center"]
    counted = invoke("dispute", "report", "--at", "2026-11-03T10:00:00Z", "--format", "json")
    validate(counted, "dispute-report")
    assert counted["by_status"]["approved"] == {"count": 1, "disputed": {"USD": "1.50"}, "credited": {"USD": "1.50"}}

    validate(invoke("journal", "correct", "--period", "2026-10", "--format", "json"), "journal-correct")
    validate(invoke("period", "report", "--period", "2026-10", "--out", books / "report", "--format", "json"), "wrote")
    verified = invoke("audit", "verify", "--format", "json")
    validate(verified, "audit-verify")
    assert verified["ok"] is True and verified["problems"] == []

    # The showback page of a chargeback cost center shows its issued invoice from the same database.
    runs = books / "runs"
    runs.mkdir()
    (runs / "2026-10").symlink_to(month[0], target_is_directory=True)
    dashboard = invoke("report", "json", "--runs", runs, "--policy", POLICY)
    validate(dashboard, "report-json")
    page = next(c for c in dashboard["cost_centers"] if c["id"] == invoice["cost_center"])
    assert page["name"] and [i["invoice_id"] for i in page["invoices"]] == [invoice["invoice_id"]]
    assert Decimal(page["invoices"][0]["total"]) == Decimal(invoice["total"])


def test_budget_list_and_alerts_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    assert invoke("budget", "list", "--format", "json") == []
    CliRunner().invoke(
        main,
        ["budget", "set", "--cost-center", "CC-1001", "--period", "2026-10", "--amount", "2500.1234567891"],
        catch_exceptions=False,
    )
    budgets = invoke("budget", "list", "--format", "json")
    validate(budgets, "budget-list")
    assert [(b["cost_center"], b["period"], Decimal(b["amount"])) for b in budgets] == [
        ("CC-1001", "2026-10", Decimal("2500.1234567891"))
    ]
    validate(invoke("alerts", "sent", "--format", "json"), "alerts-sent")


def test_alerts_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --notifiers stdout is the channel, in --format; an alert is printed once, ever."""
    runs = write_sample(tmp_path / "runs")
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    CliRunner().invoke(main, ["budget", "import", str(runs / "budgets.csv")], catch_exceptions=False)
    check = ["alerts", "check", "--runs", runs, "--as-of", "2026-10-21"]
    alerts = invoke(*check, "--format", "json")
    validate(alerts, "alerts-check")
    assert {"budget-forecast", "anomaly"} <= {a["kind"] for a in alerts}
    # Every amount at the ledger's scale, whatever its source (a forecast, a stored budget, the ledger).
    amounts = [a["amount"] for a in alerts] + [a["budget"] for a in alerts if a["budget"] is not None]
    amounts += [a["details"][k] for a in alerts for k in ("expected", "impact") if k in a["details"]]
    assert {len(amount.partition(".")[2]) for amount in amounts} == {LEDGER_SCALE}
    sent = invoke("alerts", "sent", "--format", "json")
    assert sorted((s["alert_id"], s["channel"]) for s in sent) == sorted((a["alert_id"], "json") for a in alerts)
    assert invoke(*check, "--format", "json") == []


def test_alerts_check_table_and_notifiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table shows each alert as people read it; notifiers deliver as before, stdout lists what was sent."""
    runs = write_sample(tmp_path / "runs")
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    monkeypatch.setenv("CHARGEBACK_LOCALE", "en_US")
    CliRunner().invoke(main, ["budget", "import", str(runs / "budgets.csv")], catch_exceptions=False)
    (tmp_path / "notifiers.yaml").write_text("notifiers: [{type: json, id: ops, stream: stderr}]\n", encoding="utf-8")
    check = ["alerts", "check", "--runs", str(runs), "--as-of", "2026-10-21"]
    result = CliRunner().invoke(main, [*check, "--notifiers", str(tmp_path / "notifiers.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    delivered = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    for alert in delivered:
        validate(alert, "alert")
    assert json.loads(result.stdout) == delivered
    table = CliRunner().invoke(main, check)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["kind", "alert"] and len(lines) == len(delivered) + 1
    forecast = next(a for a in delivered if a["kind"] == "budget-forecast")
    assert f"budget-forecast  {forecast['message']}" in lines
    assert " USD reached 80% of the 2026-10 budget " in forecast["message"]


def test_plan(tmp_path: Path) -> None:
    """A proposal that sends sandbox resources to Growth: money moves between cost centers, none is made."""
    shutil.copytree(POLICY.parent / "drivers", tmp_path / "drivers")
    text = POLICY.read_text(encoding="utf-8").replace('version: "2026.10.1"', 'version: "2026.10.2"')
    sandbox = "    - id: sandbox\n      priority: 95\n      when: {tags.environment: sandbox}\n"
    text = text.replace(
        "    - id: platform\n", sandbox + "      allocate: {method: direct, cost_center: CC-1010}\n    - id: platform\n"
    )
    (tmp_path / "acme.yaml").write_text(text, encoding="utf-8")
    common = ["--base", POLICY, "--head", tmp_path / "acme.yaml", "--input", SAMPLE, "--period", "2026-10"]
    change = invoke("plan", *common, "--format", "json", "--methodology")
    validate(change, "plan")
    assert (change["base"]["version"], change["head"]["version"]) == ("2026.10.1", "2026.10.2")
    assert sum(Decimal(c["delta"]) for c in change["cost_centers"]) == 0
    assert (
        "sandbox" in {r["rule_id"] for r in change["rules"]}
        and "+### 2. Rule `sandbox` (priority 95)" in change["methodology_diff"]
    )
    validate(invoke("plan", *common, "--format", "json"), "plan")


def test_insight_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = write_sample(tmp_path / "runs")
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    common = ["--runs", runs, "--format", "json"]
    team = invoke("report", "team", "--cost-center", "CC-1002", *common)
    validate(team, "report-team")
    assert sum(Decimal(l["current"]) for l in team["top_services"]) == Decimal(team["total"]["current"])
    validate(invoke("report", "exec", *common), "report-exec")
    anomalies = invoke("report", "anomalies", "--since", "2026-10-01", *common)
    validate(anomalies, "report-anomalies")
    assert ("CC-1002", "Amazon EC2", "2026-10-08") in {(a["cost_center"], a["service"], a["day"]) for a in anomalies}
    forecasts = invoke("report", "forecast", "--as-of", "2026-10-15", "--months", "1", "--no-save", *common)
    validate(forecasts, "report-forecast")
    assert all(Decimal(f["lower"]) <= Decimal(f["amount"]) <= Decimal(f["upper"]) for f in forecasts)
    kpis = invoke("report", "kpis", "--metrics", runs / "metrics.csv", *common)
    validate(kpis, "report-kpis")
    assert {c["cost_center"] for c in kpis["cost_per_engineer"]} == {"CC-1001", "CC-1002", "CC-1003", "CC-1004"}
    coverage = kpis["coverage"]
    assert sum(Decimal(coverage[k]) for k in ("direct", "shared", "unallocated", "pooled")) == Decimal(
        coverage["total"]
    )
    dashboard = invoke("report", "json", "--runs", runs, "--metrics", runs / "metrics.csv")
    validate(dashboard, "report-json")
    assert dashboard["kpis"] == kpis  # the dashboard shows the KPIs "report kpis" prints


def test_collect_and_enrich(tmp_path: Path) -> None:
    """A policy whose spec names its bill and a CMDB export: collect and enrich report what they stored."""
    shutil.copytree(POLICY.parent / "drivers", tmp_path / "drivers")
    (tmp_path / "owners.csv").write_text("id,cost-center\ni-0abc123,CC-1004\n", encoding="utf-8")
    sources = [{"id": "bill", "collector": "focus-files", "path": str(SAMPLE)}]
    enrich = {"cache": "cache", "sources": [{"id": "cmdb", "enricher": "files", "path": str(tmp_path / "owners.csv")}]}
    spec = f"spec:\n  sources: {json.dumps(sources)}\n  enrich: {json.dumps(enrich)}\n"  # JSON is YAML
    (tmp_path / "acme.yaml").write_text(POLICY.read_text(encoding="utf-8").replace("spec:\n", spec), encoding="utf-8")
    common = ["--policy", tmp_path / "acme.yaml", "--period", "2026-10", "--format", "json"]
    first, again = invoke("collect", *common), invoke("collect", *common)
    validate(first, "collect")
    assert [(c["source_id"], c["rows"], c["stored"]) for c in first] == [(str(SAMPLE), 600, True)]
    assert [(c["version"], c["stored"]) for c in again] == [(first[0]["version"], False)]
    snapshots = invoke("enrich", *common)
    validate(snapshots, "enrich")
    assert [(s["source_id"], s["enricher"], s["tags"]) for s in snapshots] == [("cmdb", "files", 1)]
    assert Path(snapshots[0]["path"]).exists()


def test_plugins() -> None:
    plugins = invoke("plugins", "--all", "--format", "json")
    validate(plugins, "plugins")
    notifiers = next(p for p in plugins if "json" in p["notifiers"])
    assert notifiers["builtin"] is True and "chargeback_register_notifiers" in notifiers["hooks"]


def test_every_schema_is_valid_and_used() -> None:
    """A schema file nobody validates against would go stale unnoticed."""
    source = Path(__file__).read_text(encoding="utf-8")
    for path in SCHEMAS.glob("*.schema.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
        shape = path.name.removesuffix(".schema.json")
        assert shape == "defs" or f'"{shape}")' in source, f"{path.name} is not checked by a test"
