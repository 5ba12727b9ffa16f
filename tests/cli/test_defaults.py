"""Defaults: read-only commands never create a database; chargeback.toml and CHARGEBACK_DB, in that precedence."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chargeback_engine.cli import main

READ_ONLY = [
    (["budget", "list"], 0),
    (["alerts", "sent"], 0),
    (["period", "status"], 1),
    (["invoice", "list", "--period", "2026-10"], 1),
    (["dispute", "list"], 1),
    (["dispute", "report"], 1),
    (["audit", "verify"], 1),
    (["report", "exec"], 1),
]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHARGEBACK_DB", raising=False)
    return tmp_path


@pytest.mark.parametrize(("args", "exit_code"), READ_ONLY, ids=[" ".join(a[:2]) for a, _ in READ_ONLY])
def test_read_only_commands_never_create_a_database(here: Path, args: list[str], exit_code: int) -> None:
    result = run(*args)
    assert result.exit_code == exit_code, result.output
    if exit_code:
        assert "chargeback.db: no cost database" in result.output and "Traceback" not in result.output
    assert list(here.iterdir()) == []


def test_chargeback_toml_from_a_parent_directory_holds_defaults(here: Path) -> None:
    (here / "chargeback.toml").write_text('db = "sqlite:///books.db"\n[budget.list]\nformat = "json"\n')
    (here / "team" / "deep").mkdir(parents=True)
    assert run("budget", "set", "--cost-center", "CC-1", "--period", "2026-10", "--amount", "10").exit_code == 0
    assert (here / "books.db").exists() and not (here / "chargeback.db").exists()

    os.chdir(here / "team" / "deep")  # the fixture restores the working directory
    assert (here / "chargeback.toml").exists()
    listed = run("budget", "list", "--db", f"sqlite:///{here / 'books.db'}")
    [budget] = json.loads(listed.output)
    assert (budget["cost_center"], budget["period"], Decimal(budget["amount"])) == ("CC-1", "2026-10", Decimal(10))
    assert run("budget", "list", "--db", f"sqlite:///{here / 'books.db'}", "--format", "csv").output.startswith(
        "cost_center,period,amount"
    )


def test_precedence_command_line_then_environment_then_file(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (here / "chargeback.toml").write_text('db = "sqlite:///from-file.db"\n')
    run("budget", "set", "--cost-center", "CC-1", "--period", "2026-10", "--amount", "1")
    monkeypatch.setenv("CHARGEBACK_DB", "sqlite:///from-env.db")
    run("budget", "set", "--cost-center", "CC-1", "--period", "2026-10", "--amount", "1")
    run("budget", "set", "--cost-center", "CC-1", "--period", "2026-10", "--amount", "1", "--db", "sqlite:///cli.db")
    assert sorted(p.name for p in here.iterdir()) == ["chargeback.toml", "cli.db", "from-env.db", "from-file.db"]


def test_a_wrong_config_file_is_a_located_error(here: Path) -> None:
    (here / "chargeback.toml").write_text('[run]\npolcy = "acme.yaml"\n')
    result = run("plugins")
    assert result.exit_code == 1 and "chargeback.toml: [run] has no option --polcy" in result.output
    (here / "chargeback.toml").write_text('[nope]\nformat = "json"\n')
    assert "[nope] is not a command" in run("plugins").output
    (here / "chargeback.toml").write_text("db = \n")
    broken = run("plugins")
    assert broken.exit_code == 1 and "chargeback.toml: " in broken.output and "line 1" in broken.output
    assert "Traceback" not in broken.output
