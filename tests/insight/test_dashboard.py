"""The HTML dashboard in a real headless Chromium: charts hold the data points, offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--window-size=1400,2200"]


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
        if self.chart and kind in ("point", "bar", "anomaly", "threshold") and a.get("data-value", a.get("data-threshold")):
            self.counts[(self.chart, kind)] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None


def chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_dashboard_renders_every_chart_in_chromium(sample_dir: Path, insight, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CHARGEBACK_DB", str(insight.store.engine.url))
    page = tmp_path / "dashboard.html"
    common = ["--runs", str(sample_dir), "--metrics", str(sample_dir / "metrics.csv")]
    result = CliRunner().invoke(main, ["report", "html", *common, "--out", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
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

    screenshot = tmp_path / "dashboard.png"
    chromium(["--virtual-time-budget=5000", f"--screenshot={screenshot}", page.as_uri()], tmp_path)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
