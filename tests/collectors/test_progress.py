"""The progress hook: collectors report each page or file; a listener sees them, a broken one harms nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from chargeback_engine.collectors.focus_files import FocusFilesCollector
from chargeback_engine.plugin import PageLog, Period, listening, report_progress

SAMPLE = Path(__file__).resolve().parents[2] / "policies" / "data" / "acme-focus-2026-10.csv"


def test_focus_files_reports_every_file(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        shutil.copy(SAMPLE, tmp_path / name)
    heard: list[tuple[str, int, int | None]] = []
    with listening(lambda what, done, total: heard.append((what, done, total))):
        sources = list(FocusFilesCollector().collect({"paths": [str(tmp_path)]}, Period(2026, 10)))
    assert len(sources) == 2
    assert heard == [("reading a.csv", 1, 2), ("reading b.csv", 2, 2)]


def test_page_log_reports_every_page_it_accepts() -> None:
    heard: list[tuple[str, int, int | None]] = []
    pages = PageLog("cost explorer")
    with listening(lambda what, done, total: heard.append((what, done, total))):
        pages.accept([{"cost": "1"}], "t2")
        pages.accept([{"cost": "2"}], None)
    assert heard == [("cost explorer", 1, None), ("cost explorer", 2, None)]


def test_nobody_listening_or_a_broken_listener_changes_nothing() -> None:
    report_progress("nobody", 1)

    def broken(what: str, done: int, total: int | None) -> None:
        raise RuntimeError("terminal went away")

    with listening(broken):
        report_progress("files", 1, 2)
        assert PageLog("api").accept([{"cost": "1"}], None)
