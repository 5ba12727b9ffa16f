"""The library logs through structlog and never configures logging; the CLI does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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
