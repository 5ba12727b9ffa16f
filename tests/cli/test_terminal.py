"""On a real terminal (a pseudo-terminal here): rich tables in colour, NO_COLOR respected; elsewhere plain text."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run ``chargeback ARGS`` with stdout on a pseudo-terminal; return everything it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "chargeback_engine", *args], stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait() == 0, process.stderr.read().decode() if process.stderr else ""
    return b"".join(chunks).decode("utf-8")


@pytest.fixture
def budgets(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARGEBACK_", "NO_COLOR", "FORCE_COLOR"))}
    env.update(
        CHARGEBACK_DB=f"sqlite:///{tmp_path / 'books.db'}",
        TERM="xterm-256color",
        COLUMNS="100",
        CHARGEBACK_LOCALE="en_US",
    )
    result = CliRunner(env=env).invoke(
        main, ["budget", "set", "--cost-center", "CC-1001", "--period", "2026-10", "--amount", "25397.964"]
    )
    assert result.exit_code == 0, result.output
    return env


#: An SGR sequence that sets a foreground colour (30-37, 90-97, or 38;...): what NO_COLOR forbids; bold stays.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])[;m]")


def test_a_terminal_gets_a_table_in_colour(budgets: dict[str, str]) -> None:
    shown = on_a_terminal(["budget", "list"], budgets)
    assert COLOUR.search(shown)
    assert "━" in shown and "25,397.96" in shown  # a drawn table, the amount as people read it


def test_no_color_keeps_the_table_without_colour(budgets: dict[str, str]) -> None:
    shown = on_a_terminal(["budget", "list"], {**budgets, "NO_COLOR": "1"})
    assert not COLOUR.search(shown)
    assert "━" in shown and "25,397.96" in shown


def test_a_pipe_gets_plain_stable_text(budgets: dict[str, str]) -> None:
    result = CliRunner(env=budgets).invoke(main, ["budget", "list"])
    assert result.output.splitlines() == ["cost center  period      amount", "CC-1001      2026-10  25,397.96"]
