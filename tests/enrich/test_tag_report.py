"""``chargeback report tags`` against an independent count of the sample month."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.compliance import tag_report
from chargeback_engine.engine.runner import DEFAULT_EXPORTERS
from chargeback_engine.testing import line_items, make_engine, make_policy

RULES = [{"id": "by-cost-center", "priority": 10, "allocate": {"method": "tag", "keys": ["cost-center"]}}]
ACCOUNTS = ("111111111111", "222222222222")


def month() -> list[dict]:
    lines = []
    for i in range(60):
        tags = {"team": "web"} if i % 10 < 3 else {"cost-center": f"CC-{i % 3 + 1}", "team": "web"}
        amount = Decimal(f"{i + 1}.{i:02d}") * (-1 if i == 52 else 1)  # an untagged credit
        lines.append({"BilledCost": amount, "ResourceId": f"i-{i:04d}", "SubAccountId": ACCOUNTS[i % 2], "Tags": tags})
    return lines


def run_months(tmp_path: Path) -> tuple[list[dict], list[int], object]:
    lines = month()
    untagged = [i for i in range(60) if "cost-center" not in lines[i]["Tags"]]
    known = untagged[: len(untagged) * 2 // 3]
    rows = "".join(f"i-{i:04d},,CC-2,\n" for i in known) + f"{ACCOUNTS[1]},account,,ana@example.com\n"
    (tmp_path / "cmdb.csv").write_text("id,scope,CostCenter,owner\n" + rows, encoding="utf-8")
    policy = make_policy(
        builtins=True,
        rules=RULES,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}, "required": ["cost-center", "team"]},
        enrich={"cache": "cache", "sources": [{"enricher": "files", "id": "cmdb", "path": str(tmp_path / "cmdb.csv")}]},
    )
    plain = make_policy(builtins=True, rules=RULES)
    exporters = (*DEFAULT_EXPORTERS, "enrichment")
    make_engine(plain, builtins=True).run(
        [line_items(*lines, period="2026-09")], "2026-09", out=tmp_path / "sep", export=["focus-allocated"]
    )  # the source lines' tags
    make_engine(policy, builtins=True, exporters=exporters).run([line_items(*lines)], "2026-10", out=tmp_path / "oct")
    return lines, known, policy


def test_the_figures_match_an_independent_count(tmp_path: Path) -> None:
    lines, known, policy = run_months(tmp_path)
    report = tag_report([tmp_path / "sep", tmp_path / "oct"], policy, top=3)
    cost = [abs(line["BilledCost"]) for line in lines]  # gross spend
    compliant = [("cost-center" in line["Tags"]) or i in known for i, line in enumerate(lines)]

    [total] = report.total
    assert (total.lines, total.compliant_lines) == (60, sum(compliant))
    assert total.spend == sum(cost) and total.compliant_spend == sum(c for c, ok in zip(cost, compliant) if ok)
    assert total.pct_lines == Decimal("90.0")

    for account in report.by_account:
        mine = [i for i in range(60) if lines[i]["SubAccountId"] == account.key]
        assert account.lines == len(mine) and account.compliant_lines == sum(compliant[i] for i in mine)
        assert account.compliant_spend == sum(cost[i] for i in mine if compliant[i])

    def cost_center(i: int) -> str:
        return "CC-2" if i in known else lines[i]["Tags"].get("cost-center", "UNALLOCATED")

    for cc in report.by_cost_center:
        mine = [i for i in range(60) if cost_center(i) == cc.key]
        assert (cc.lines, cc.spend) == (len(mine), sum(cost[i] for i in mine))
        assert cc.compliant_lines == sum(compliant[i] for i in mine)
    assert {cc.key for cc in report.by_cost_center} == {"CC-1", "CC-2", "CC-3", "UNALLOCATED"}

    assert [(t.key, t.compliant_lines) for t in report.trend] == [("2026-09", 42), ("2026-10", 54)]

    left = sorted((i for i in range(60) if not compliant[i]), key=lambda i: -cost[i])[:3]
    assert [u.resource_id for u in report.top_untagged] == [f"i-{i:04d}" for i in left]
    assert [u.spend for u in report.top_untagged] == [cost[i] for i in left]
    assert all(u.missing == ("cost-center",) for u in report.top_untagged)
    assert [u.owner for u in report.top_untagged] == [
        "ana@example.com" if lines[i]["SubAccountId"] == ACCOUNTS[1] else None for i in left
    ]

    filled = {(f.source, f.tag): (f.lines, f.spend) for f in report.filled}
    assert filled[("cmdb", "cost-center")] == (len(known), sum(cost[i] for i in known))
    owned = [i for i in range(60) if lines[i]["SubAccountId"] == ACCOUNTS[1]]
    assert filled[("cmdb", "owner")] == (len(owned), sum(cost[i] for i in owned))


def test_every_format_renders_the_same_figures(tmp_path: Path) -> None:
    _, _, policy = run_months(tmp_path)
    runner = CliRunner()
    args = ["report", "tags", "--run", str(tmp_path / "sep"), "--run", str(tmp_path / "oct"), "--policy", policy.path]
    results = {fmt: runner.invoke(main, [*args, "--format", fmt]) for fmt in ("table", "json", "csv", "markdown")}
    assert all(r.exit_code == 0 for r in results.values()), {k: r.output for k, r in results.items()}
    document = json.loads(results["json"].output)
    assert document["total"][0]["compliant_lines"] == 54 and document["required"] == ["cost-center", "team"]
    rows = list(csv.DictReader(io.StringIO(results["csv"].output)))
    assert [r["compliant_lines"] for r in rows if r["section"] == "trend"] == ["42", "54"]
    assert "54/60 lines (90.0%)" in results["table"].output
    assert "| period | currency | lines |" in results["markdown"].output
    assert "### Gaps filled by enrichers" in results["markdown"].output


def test_a_policy_without_required_tags_is_an_error(tmp_path: Path) -> None:
    run_months(tmp_path)
    policy = make_policy(builtins=True, rules=RULES)
    from chargeback_engine.errors import InputError

    try:
        tag_report([tmp_path / "oct"], policy)
    except InputError as exc:
        assert "spec.tags.required" in str(exc)
    else:
        raise AssertionError("no error")


def test_the_weekly_report_goes_out_through_a_notifier(tmp_path: Path) -> None:
    """The built-in webhook notifier posts it to a real local HTTP server."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _, _, policy = run_months(tmp_path)
        (tmp_path / "notifiers.yaml").write_text(
            f"notifiers:\n  - {{type: webhook, url: 'http://127.0.0.1:{server.server_port}/hook'}}\n", encoding="utf-8"
        )
        result = CliRunner().invoke(
            main,
            [
                "report",
                "tags",
                "--run",
                str(tmp_path / "oct"),
                "--policy",
                policy.path,
                "--notify",
                str(tmp_path / "notifiers.yaml"),
            ],
        )
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    [alert] = received
    assert alert["kind"] == "tag-report" and alert["period"] == "2026-10"
    assert "## Tag compliance (2026-10)" in alert["message"] and alert["details"]["pct_spend_USD"] == "84.6"
