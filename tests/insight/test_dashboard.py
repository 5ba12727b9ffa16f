"""The HTML dashboard in a real headless Chromium: charts hold the data points, offline."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.insight.dashboard import page_name

CHROMIUM = shutil.which("chromium")
POLICY = Path(__file__).resolve().parents[2] / "policies" / "acme.yaml"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,2200",
]


class ChartElements(HTMLParser):
    """Counts data points, bars, anomaly rings and threshold lines per chart in a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.counts: Counter[tuple[str, str]] = Counter()
        self.rendered = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.rendered = a.get("data-rendered") == "true"
        if tag == "svg" and a.get("data-chart"):
            self.chart = a["data-chart"]
        kind = {"circle": a.get("class"), "rect": a.get("class"), "line": a.get("class")}.get(tag)
        if (
            self.chart
            and kind in ("point", "bar", "anomaly", "threshold")
            and a.get("data-value", a.get("data-threshold"))
        ):
            self.counts[(self.chart, kind)] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None


class Texts(HTMLParser):
    """Tick labels and axis titles per chart, legend entries, links and the page heading in a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.current: tuple[str, ...] | None = None
        self.by_chart: dict[tuple[str, str], list[str]] = {}
        self.legend: list[str] = []
        self.links: dict[str, str] = {}
        self.headline = ""
        self._href: str | None = None
        self._in_legend = self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "svg" and a.get("data-chart"):
            self.chart = a["data-chart"].removeprefix("chart-")
        if tag == "text" and self.chart:
            self.current = ("tick",) if "tick" in classes else ("axis-title",) if "axis-title" in classes else None
        if tag == "div" and "legend" in classes:
            self._in_legend = True
        if tag == "a":
            self._href = a.get("href")
        if tag == "h1" and a.get("id") == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None
        if tag == "text":
            self.current = None
        if tag == "div":
            self._in_legend = False
        if tag == "a":
            self._href = None
        if tag == "h1":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self.chart and self.current:
            self.by_chart.setdefault((self.chart, self.current[0]), []).append(data)
        if self._in_legend:
            self.legend.append(data)
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href
        if self._in_title:
            self.headline += data

    def of(self, chart: str, kind: str) -> list[str]:
        return self.by_chart.get((chart, kind), [])


class Tables(HTMLParser):
    """The rows of each table in a DOM dump, by the id of the element that holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.host: str | None = None
        self.rows: dict[str, list[list[str]]] = {}
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("id"):
            self.host = a["id"]
        if tag == "tr" and self.host:
            self.rows.setdefault(self.host, []).append([])
        if tag == "td" and self.host:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self.host:
            self.rows[self.host][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def body(self, host: str) -> list[list[str]]:
        return [row for row in self.rows.get(host, []) if row]  # the header row has no td


def shown_pct(part: Decimal, whole: Decimal) -> str:
    """A percentage as the page shows it: one decimal at most, no trailing zero."""
    text = f"{(100 * part / whole).quantize(Decimal('0.1')):f}"
    return text.removesuffix(".0") + "%"


def independent_count(run: Path, cost_column: str) -> dict[str, Any]:
    """The tag figures of one sample run, counted from its Parquet files without the product's code."""
    lines = pq.read_table(run / "focus_allocated.parquet").to_pylist()
    filled = {(r["x_SourceId"], r["x_SourceRow"]) for r in pq.read_table(run / "enrichment.parquet").to_pylist()}
    by_cc: dict[str, list[int | Decimal]] = {}
    untagged: dict[str, Decimal] = {}
    owners: dict[str, str] = {}
    for line in lines:
        tags = json.loads(line["Tags"])
        ok = bool(str(tags.get("cost-center") or "").strip())
        counts = by_cc.setdefault(line["x_CostCenterId"], [0, 0, Decimal(0), Decimal(0)])
        spend = abs(line[cost_column])
        counts[0] += 1
        counts[1] += ok
        counts[2] += spend
        counts[3] += spend if ok else 0
        if not ok:
            untagged[line["ResourceId"]] = untagged.get(line["ResourceId"], Decimal(0)) + spend
            owners[line["ResourceId"]] = tags.get("owner", owners.get(line["ResourceId"], "-"))
    enriched = sum(1 for line in lines if (line["x_SourceId"], line["x_SourceRow"]) in filled)
    return {
        "by_cc": by_cc,
        "untagged": [(r, owners[r]) for r in sorted(untagged, key=lambda r: -untagged[r])],
        "enriched": enriched,
    }


def chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_dashboard_renders_every_chart_in_chromium(sample_dir: Path, insight, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHARGEBACK_DB", str(insight.store.engine.url))
    page = tmp_path / "dashboard.html"
    policy = tmp_path / "acme-tags.yaml"  # the bundled policy, requiring the cost-center tag
    aliases = "    aliases: {costcenter: cost-center}\n"
    policy.write_text(POLICY.read_text().replace(aliases, aliases + "    required: [cost-center]\n"))
    shutil.copytree(POLICY.parent / "drivers", tmp_path / "drivers")
    common = ["--runs", str(sample_dir), "--metrics", str(sample_dir / "metrics.csv"), "--policy", str(policy)]
    previous_umask = os.umask(0o022)
    try:
        result = CliRunner().invoke(main, ["report", "html", *common, "--out", str(page)], catch_exceptions=False)
    finally:
        os.umask(previous_umask)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(page.stat().st_mode) == 0o644  # a web server can serve it
    data = json.loads(CliRunner().invoke(main, ["report", "json", *common], catch_exceptions=False).output)

    html = page.read_text()
    assert "<script src" not in html and "<link" not in html and "https://" not in html  # nothing to fetch: offline

    dom = chromium(["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], tmp_path).stdout
    charts = ChartElements()
    charts.feed(dom)
    assert charts.rendered, "the dashboard script did not finish"
    periods, teams = len(data["periods"]), len(data["cost_by_team"])
    assert (periods, teams) == (6, 4)
    assert charts.counts[("chart-cost-by-team", "point")] == teams * periods
    assert charts.counts[("chart-direct-vs-shared", "bar")] == 3 * periods
    assert charts.counts[("chart-budget-burn", "point")] == sum(len(b["days"]) for b in data["budget_burn"]) == 4 * 31
    assert charts.counts[("chart-budget-burn", "threshold")] == 2
    assert charts.counts[("chart-anomalies", "point")] == sum(len(s["points"]) for s in data["daily"])
    assert charts.counts[("chart-anomalies", "anomaly")] == len(data["anomalies"]) >= 2
    assert charts.counts[("chart-unallocated", "point")] == periods

    texts = Texts()
    texts.feed(dom)
    ticks = texts.of("cost-by-team", "tick")
    assert ticks and all(t.endswith(" USD") for t in ticks)  # the currency on the axis
    assert ticks[:3] == ["0 USD", "50K USD", "100K USD"]  # round ticks
    assert texts.of("cost-by-team", "axis-title") == ["Cost (USD)", "Period"]
    percents = [int(t.removesuffix("%")) for t in texts.of("budget-burn", "tick")]
    assert percents[0] == 0 and 100 in percents and all(p % 25 == 0 for p in percents)  # round, 100% a tick
    assert "Payments (CC-1001)" in texts.legend and "CC-1001" not in texts.legend  # names, not bare ids
    assert {"Payments (CC-1001)": "dashboard-CC-1001.html"}.items() <= texts.links.items()
    assert data["as_of"] == "2026-10-31" and f"Forecasts, as of {data['as_of']}" in dom
    assert data["forecasts"] and all(f["period"] > "2026-10" for f in data["forecasts"])  # future months only

    # The tag-compliance section shows what `chargeback report tags` reports, and that matches a count by hand.
    runs = sorted(p for p in sample_dir.iterdir() if p.name[:4].isdigit())
    tags = CliRunner().invoke(
        main, ["report", "tags", *[f"--run={r}" for r in runs], "--policy", str(policy), "--format", "json"]
    )
    assert tags.exit_code == 0, tags.output
    assert data["tag_compliance"] == json.loads(tags.output)
    [total] = data["tag_compliance"]["total"]  # the KPI tile is the same computation's headline
    assert (data["kpis"]["tagging"]["by_spend_pct"], data["kpis"]["tagging"]["lines"]) == (
        total["pct_spend"],
        total["lines"],
    )
    assert charts.counts[("chart-tag-trend", "point")] == 2 * periods  # by spend and by count, per run
    tables = Tables()
    tables.feed(dom)
    count = independent_count(runs[-1], "BilledCost")
    assert [row[:5] + row[7:] for row in tables.body("tags-cost-centers")] == [
        [texts_name(data["names"], cc), "USD", str(n), str(m), shown_pct(Decimal(m), Decimal(n)), shown_pct(ms, s)]
        for cc, (n, m, s, ms) in sorted(count["by_cc"].items())
    ]
    assert [(row[0], row[5]) for row in tables.body("tags-untagged")] == count["untagged"]
    assert ("ec2-unallocated-0", "ana@example.com") in count["untagged"]  # the owner to chase
    assert [row[:4] for row in tables.body("tags-filled")] == [["cmdb", "files", "cost-center", str(count["enriched"])]]
    assert len(tables.body("tags-accounts")) == 2 and count["enriched"] > 0

    team_page = tmp_path / texts.links["Payments (CC-1001)"]
    assert stat.S_IMODE(team_page.stat().st_mode) == 0o644
    team_dom = chromium(["--virtual-time-budget=5000", "--dump-dom", team_page.as_uri()], tmp_path).stdout
    team = Texts()
    team.feed(team_dom)
    assert 'id="tags" hidden' in team_dom  # the section is the overview's
    charts = ChartElements()
    charts.feed(team_dom)
    assert charts.rendered and charts.counts[("chart-team-trend", "point")] == periods
    assert team.headline == "Payments (CC-1001)"
    assert all(t.endswith(" USD") for t in team.of("team-trend", "tick"))
    assert "Top services" in team_dom and "Amazon" in team_dom and "dashboard.html" in team.links.values()

    screenshot = tmp_path / "dashboard.png"
    chromium(["--virtual-time-budget=5000", f"--screenshot={screenshot}", page.as_uri()], tmp_path)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def texts_name(names: dict[str, str], cost_center: str) -> str:
    """A cost center as the page labels it: its name and id, or the bare id when it has no name."""
    name = names.get(cost_center, cost_center)
    return f"{name} ({cost_center})" if name != cost_center else cost_center


def test_page_names_are_safe_and_unique() -> None:
    overview = Path("site/dashboard.html")
    assert page_name(overview, "CC-1001") == "dashboard-CC-1001.html"
    odd = page_name(overview, "../etc/passwd")
    assert "/" not in odd and odd.startswith("dashboard-.._etc_passwd-")
    assert page_name(overview, "a/b") != page_name(overview, "a_b")
