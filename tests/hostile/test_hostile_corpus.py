"""The hostile corpus: every case ends with one sentence and a non-zero exit, never a traceback.

Each case builds its hostile input in a fresh folder, runs the real ``chargeback`` command
and states the exit status and the words its message must hold. A case that raised an
exception past the CLI, printed a traceback or echoed planted file content fails.
Add a case here for every failure that is fixed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.insight import write_sample

REPO = Path(__file__).resolve().parents[2]
SECRET = "SECRET-TOKEN-abc123"


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # builds the inputs in a folder, returns the command line
    code: int
    says: tuple[str, ...]


def _acme(folder: Path) -> Path:
    """A copy of the bundled sample policy with its drivers."""
    shutil.copytree(REPO / "policies", folder / "policies", ignore=shutil.ignore_patterns("*_test.yaml"))
    return folder / "policies"


def _patched_policy(folder: Path, old: str, new: str) -> list[str]:
    policies = _acme(folder)
    text = (policies / "acme.yaml").read_text()
    assert old in text, old
    (policies / "acme.yaml").write_text(text.replace(old, new, 1))
    return ["validate", str(policies / "acme.yaml")]


def _run_acme(folder: Path) -> list[str]:
    policies = folder / "policies"
    return [
        "run",
        "--policy",
        str(policies / "acme.yaml"),
        "--input",
        str(policies / "data" / "acme-focus-2026-10.csv"),
        "--period",
        "2026-10",
        "--out",
        str(folder / "out"),
    ]


def _driver_outside(folder: Path) -> list[str]:
    (folder / "stolen.csv").write_text(f"period,cost_center,quantity\n2026-10,CC-1001,{SECRET}\n")
    return _patched_policy(folder, "file: drivers/db-connections.csv", "file: ../stolen.csv")


def _driver_absolute(folder: Path) -> list[str]:
    return _patched_policy(folder, "file: drivers/db-connections.csv", "file: /etc/passwd")


def _driver_quantity_is_text(folder: Path) -> list[str]:
    policies = _acme(folder)
    (policies / "drivers" / "db-connections.csv").write_text(
        f"period,cost_center,quantity\n2026-10,CC-1001,{SECRET}{'x' * 500}\n"
    )
    return _run_acme(folder)


def _driver_rows(rows: str) -> Callable[[Path], list[str]]:
    """``validate`` refuses, before any run, a driver file row that the run would refuse."""

    def setup(folder: Path) -> list[str]:
        policies = _acme(folder)
        (policies / "drivers" / "db-connections.csv").write_text(f"period,cost_center,quantity\n{rows}")
        return ["validate", str(policies / "acme.yaml")]

    return setup


def _policy_test(text: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        policies = _acme(folder)
        (policies / "acme_test.yaml").write_text(text)
        return ["test", str(policies)]

    return setup


def _file(name: str, content: str | bytes, *command: str) -> Callable[[Path], list[str]]:
    """Writes ``content`` to ``name`` and runs ``command`` with ``{file}`` and ``{dir}`` filled in."""

    def setup(folder: Path) -> list[str]:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return [c.format(file=path, dir=path.parent, db=f"sqlite:///{folder / 'books.db'}") for c in command]

    return setup


def _settings(content: str, name: str = "settings.yaml") -> Callable[[Path], list[str]]:
    return _file(name, content, "period", "close", "--period", "2026-10", "--db", "{db}", "--settings", "{file}")


def _notifiers(text: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        write_sample(folder / "runs")
        (folder / "notifiers.yaml").write_text(text)
        return ["alerts", "check", "--notifiers", str(folder / "notifiers.yaml")]

    return setup


def _out_below_a_file(folder: Path) -> list[str]:
    (folder / "blocker").write_text("a file\n")
    return [
        "run",
        "--policy",
        str(REPO / "policies" / "acme.yaml"),
        "--input",
        str(folder / "missing.csv"),
        "--period",
        "2026-10",
        "--out",
        str(folder / "blocker" / "out"),
    ]


def _corrupt_outputs(folder: Path) -> list[str]:
    (folder / "out").mkdir()
    for name in ("allocations.parquet", "decisions.parquet"):
        (folder / "out" / name).write_bytes(b"PAR1" + b"\x00garbage" * 50)
    return ["explain", str(folder / "out"), "--cost-center", "CC-1"]


CASES = [
    Case(
        "driver file climbs out of the policy folder",
        _driver_outside,
        1,
        (
            "$.spec.drivers.db-connections.file",
            "'../stolen.csv' is outside the policy's folder",
            "CHARGEBACK_POLICY_ROOTS",
        ),
    ),
    Case("driver file is an absolute path", _driver_absolute, 1, ("'/etc/passwd' is outside the policy's folder",)),
    Case(
        "driver quantity is text: a short escaped excerpt only",
        _driver_quantity_is_text,
        1,
        ("driver 'db-connections': quantity 'SECRET-TOKEN-abc123xxxxxxxxxxxxx…' is not a number",),
    ),
    Case(
        "validate: a driver file row names an undeclared cost center",
        _driver_rows("2026-10,CC-1001,3\n2026-10,CC-404,1\n"),
        1,
        ("$.spec.drivers.db-connections.file: driver 'db-connections': data row 2: unknown cost center 'CC-404'",),
    ),
    Case(
        "validate: a negative driver quantity",
        _driver_rows("2026-10,CC-1001,3\n2026-10,CC-1002,-1\n"),
        1,
        ("driver 'db-connections': data row 2 (CC-1002, 2026-10): quantity -1 is negative",),
    ),
    Case(
        "validate: a NaN driver quantity",
        _driver_rows("2026-10,CC-1001,NaN\n"),
        1,
        ("driver 'db-connections': data row 1 (CC-1001, 2026-10): quantity NaN is not a finite number",),
    ),
    Case(
        "catastrophic regex is linear, a backreference is refused",
        lambda f: _patched_policy(f, "when: {tags.team: platform}", r"when: {tags.team: {regex: '(a+)\1'}}"),
        1,
        ("needs a backtracking regex engine", "rewrite it without backreferences or lookaround"),
    ),
    Case(
        "fixed fractions summing to 1 + 1e-28",
        lambda f: _patched_policy(
            f,
            "allocate: {method: direct, cost_center: CC-9000}",
            "allocate: {method: fixed, splits: {CC-1001: 0.5000000000000000000000000001, CC-1002: 0.5}}",
        ),
        1,
        ("fractions sum to 1.0000000000000000000000000001, not exactly 1",),
    ),
    Case(
        "amortized in a stage",
        lambda f: _patched_policy(
            f,
            "CC-9000\n      allocate: {method: proportional, basis: direct-cost, fallback: even}\n",
            "CC-9000\n      allocate: {method: amortized, months: 3, then: {method: even}}\n",
        ),
        1,
        ("stage for pool 'CC-9000' cannot use method 'amortized'",),
    ),
    Case(
        "policy test with a duplicate key",
        _policy_test("cases:\n  - name: a\n    name: b\n"),
        1,
        ("acme_test.yaml:3:5", "duplicate key 'name'"),
    ),
    Case(
        "policy test with a Python object tag",
        _policy_test("cases: !!python/object/apply:os.system ['echo hacked']\n"),
        1,
        ("acme_test.yaml:1:8", "the tag !!python/object/apply:os.system is not allowed"),
    ),
    Case(
        "policy test whose cases are not a list",
        _policy_test("cases: 5\n"),
        1,
        ("acme_test.yaml:1:8: $.cases: expected a mapping with 'cases', a list of mappings",),
    ),
    Case(
        "policy test whose case is a list",
        _policy_test("cases:\n  - name: a\n  - [b]\n"),
        1,
        ("acme_test.yaml:3:5: $.cases[1]: expected a mapping with 'cases', a list of mappings",),
    ),
    Case(
        "policy test whose expected amount is text",
        _policy_test("cases:\n  - name: a\n    expect: {CC-1001: lots}\n"),
        1,
        ("acme_test.yaml:3:23: $.cases[0].expect.CC-1001: expected amount 'lots' is not a number",),
    ),
    Case(
        "policy test whose period is not a month",
        _policy_test("cases:\n  - name: a\n    period: 2026-13\n"),
        1,
        ("acme_test.yaml:3:13: $.cases[0].period:",),
    ),
    Case(
        "policy test that is an alias bomb",
        _policy_test("a: &a [x, x]\nb: &b [*a, *a]\ncases: [*b]\n"),
        1,
        ("anchors",),
    ),
    Case(
        "--db is a text file, not SQLite",
        _file("notes.db", "hello, not a database\n" * 200, "period", "status", "--db", "sqlite:///{file}"),
        1,
        ("the cost database failed: file is not a database", "--db (or CHARGEBACK_DB) must name"),
    ),
    Case(
        "--settings is a CSV",
        _settings("account,rate\n6420,0.05\n", "settings.csv"),
        1,
        ("settings.csv:1:1: $: the settings file must be a mapping",),
    ),
    Case(
        "--settings with a markup rate that is text",
        _settings("markups:\n  - {from: DE, to: US, rate: lots}\n"),
        1,
        ("settings.yaml:2:30: $.markups[0].rate: 'lots' is not a decimal number",),
    ),
    Case(
        "--settings with SLA days that are not a number",
        _settings("payer_entity: DE\nsla_days: soon\n"),
        1,
        ("settings.yaml:2:11: $.sla_days: 'soon' is not a whole number of days",),
    ),
    Case(
        "--settings with a Python tag",
        _settings("payer_entity: !!python/name:os.system\n"),
        1,
        ("settings.yaml:1:15", "not allowed"),
    ),
    Case(
        "--notifiers with duplicate keys",
        _notifiers("notifiers: []\nnotifiers: [{type: json}]\n"),
        1,
        ("notifiers.yaml:2:1", "duplicate key 'notifiers'"),
    ),
    Case(
        "--notifiers naming an unknown notifier",
        _notifiers("notifiers:\n  - {type: json}\n  - {type: pager}\n"),
        1,
        ("notifiers.yaml:3:5: $.notifiers[1]: unknown notifier type 'pager'",),
    ),
    Case(
        "--notifiers with an option of the wrong type",
        _notifiers("notifiers:\n  - type: webhook\n    url: ftp://x\n"),
        1,
        ("notifiers.yaml:3:10: $.notifiers[0].url: 'ftp://x' does not match",),
    ),
    Case(
        "--notifiers that is a list",
        _notifiers("- {type: json}\n"),
        1,
        ("notifiers.yaml:1:1: $: expected {notifiers: [...]}",),
    ),
    Case(
        "--out below a file, found before the input is read",
        _out_below_a_file,
        1,
        ("blocker/out cannot be created:", "blocker is not a directory; give a directory for the outputs"),
    ),
    Case("explain on a corrupt Parquet", _corrupt_outputs, 1, ("allocations.parquet",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_case_is_one_sentence_and_no_traceback(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    monkeypatch.setenv("CHARGEBACK_RUNS", str(tmp_path / "runs"))
    args = case.setup(tmp_path)
    result = CliRunner().invoke(main, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    assert result.exit_code == case.code, output
    assert "Traceback" not in output
    assert SECRET + "x" * 20 not in output and "root:x:0:0" not in output
    for words in case.says:
        assert words in output, output


def test_a_full_disk_during_period_close_is_a_sentence_and_the_books_stay_as_they_were(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) below the database's size makes
    SQLite's writes fail as on a full disk (EFBIG; SQLite reports a disk I/O error)."""
    import resource
    import signal
    import subprocess
    import sys

    from chargeback_engine.costdb.connection import open_database
    from chargeback_engine.finance import ingest_run, period_statuses
    from tests.finance.builders import MONTH, run_input

    path = tmp_path / "books.db"
    books = open_database(f"sqlite:///{path}")
    ingest_run(books, run_input("2026-01", MONTH))
    books.dispose()
    size = path.stat().st_size

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 4, size // 4))

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chargeback_engine",
            "period",
            "close",
            "--period",
            "2026-01",
            "--db",
            f"sqlite:///{path}",
        ],
        capture_output=True,
        text=True,
        preexec_fn=limited,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Error: the cost database failed: disk I/O error; free disk space (or check the disk)" in done.stderr
    books = open_database(f"sqlite:///{path}")
    assert [s.closed for s in period_statuses(books) if str(s.period) == "2026-01"] in ([False], [])
    books.dispose()
