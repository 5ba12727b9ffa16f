"""The library logs through structlog into ``logging`` and never configures it; the CLI does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

USE_THE_LIBRARY = textwrap.dedent(
    """
    import logging
    import structlog

    import chargeback_engine
    from chargeback_engine import cli, testing
    from chargeback_engine.plugins import build_registry, get_plugin_manager, list_plugins

    pm = get_plugin_manager(allow=["no-such-plugin"])  # logs a warning through structlog
    build_registry(pm)
    list_plugins(pm, include_builtin=True)
    testing.line_items({"BilledCost": "1"})

    assert not structlog.is_configured(), "the library configured structlog"
    root = logging.getLogger()
    assert root.handlers == [] and root.level == logging.WARNING, (root.handlers, root.level)
    handlers = [h for name in logging.root.manager.loggerDict for h in logging.getLogger(name).handlers]
    assert all(isinstance(h, logging.NullHandler) for h in handlers), handlers  # NullHandler: libraries' etiquette
    print("untouched")
    """
)


def test_importing_and_using_the_library_configures_no_logging():
    result = subprocess.run([sys.executable, "-c", USE_THE_LIBRARY], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "untouched"


RUN_THE_SAMPLE = textwrap.dedent(
    """
    from chargeback_engine import Engine, get_plugin_manager

    get_plugin_manager(allow=["no-such-plugin"])  # a warning event, which Python would print unconfigured
    result = Engine("policies/acme.yaml").run(["policies/data/acme-focus-2026-10.csv"], "2026-10")
    assert result.summary()
    """
)


def test_an_embedding_program_that_configures_nothing_sees_nothing():
    result = subprocess.run(
        [sys.executable, "-c", RUN_THE_SAMPLE], capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_an_embedding_program_that_configures_logging_gets_the_events():
    script = "import logging\nlogging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n" + RUN_THE_SAMPLE
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split()[0] for line in lines if "plugin.allow_list_unmatched" in line] == ["chargeback_engine.plugins"]
    runner = [line for line in lines if line.startswith("chargeback_engine.engine.runner ")]
    assert [event for line in runner for event in ("run.start", "run.done") if event in line] == [
        "run.start",
        "run.done",
    ]


def _chargeback(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargeback_engine", *args], capture_output=True, text=True, check=False
    )


def test_log_format_json_writes_one_json_object_per_line():
    result = _chargeback("--log-format", "json", "-vv", "--allow-plugin", "no-such-plugin", "plugins", "--all")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records, "expected log lines on stderr"
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
    assert {"event": "plugin.allow_list_unmatched", "level": "warning", "plugins": ["no-such-plugin"]}.items() <= next(
        r for r in records if r["event"] == "plugin.allow_list_unmatched"
    ).items()
    loaded = next(r for r in records if r["event"] == "plugins.loaded")  # -vv shows debug records
    assert loaded["level"] == "debug" and loaded["skipped"] == sorted(loaded["skipped"])
    assert "plugin" not in result.stdout.lower().replace("no plugins installed", "")  # logs go to stderr only


def test_log_format_console_is_not_json():
    result = _chargeback("--log-format", "console", "--allow-plugin", "no-such-plugin", "plugins")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "plugin.allow_list_unmatched" in line and "plugins=['no-such-plugin']" in line
    assert not line.startswith("{")


def test_run_logs_its_events_on_stderr_at_v_and_keeps_stdout_for_the_summary(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chargeback_engine",
            "--log-format",
            "json",
            "-v",
            "run",
            "--policy",
            "policies/acme.yaml",
            "--input",
            "policies/data/acme-focus-2026-10.csv",
            "--period",
            "2026-10",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["event"], e["level"]) for e in events if e["event"].startswith("run.")] == [
        ("run.start", "info"),
        ("run.done", "info"),
    ]
    assert "run.start" not in result.stdout and result.stdout.splitlines()[-1].startswith("run r-")


OTHER_LIBRARIES = textwrap.dedent(
    """
    import logging
    from chargeback_engine.cli import configure_logging
    from chargeback_engine.logs import get_logger

    configure_logging("json", 2)
    get_logger("chargeback_engine.probe").debug("probe.debug", url="https://user:hunter2-secret@example.com/x")
    logging.getLogger("sdk.probe").debug("signed request Authorization: AWS4-HMAC-SHA256 Credential=AKIA")
    logging.getLogger("sdk.probe").warning("retrying %s", "https://example.com/?token=abc123")
    """
)


def test_at_vv_the_cli_shows_its_own_debug_events_and_other_libraries_warnings_redacted():
    result = subprocess.run([sys.executable, "-c", OTHER_LIBRARIES], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(r["event"], r["level"]) for r in records] == [
        ("probe.debug", "debug"),
        ("retrying https://example.com/?token=***", "warning"),
    ]
    assert records[0]["url"] == "https://***@example.com/x"
