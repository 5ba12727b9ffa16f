"""Console sessions in docs/ that are real: run them, compare them, rewrite them.

A fenced ``console`` block preceded by ``<!-- docs-output -->`` is a session: each ``$ ``
line (continued by a trailing backslash) is a ``chargeback`` command, and the lines up to
the next ``$ `` are what it prints. The sessions of one page run in order in one fresh
working directory holding a copy of the repository's ``policies/``, with no
``CHARGEBACK_*`` settings and the ``en_US`` number format, so later commands see what
earlier ones wrote. Enrichment snapshots are taken at ``SNAPSHOT_TIME``: the time a
snapshot is taken is in what ``explain`` prints and in the run id, and is the one thing
that would differ between two real runs. ``setup="..."`` on the marker runs commands first without showing them
(``;`` between them). Paths under ``/tmp/`` live in the session's directory. A command may
end in ``| head -n N``; one that must fail says so with ``# exits N``; other comments
(``# ...``) are not passed on. ``sqlite3 DB "SQL"`` runs SQL on a database of the session
(to show what ``audit verify`` catches).

A fenced block preceded by ``<!-- docs-file path="P" -->`` is a file the page's later
sessions read: it is written to ``P`` as shown. With ``patch="F"`` the block is a unified
diff, and ``P`` is the repository's file ``F`` with the diff applied.

``python -m tests.docs.regenerate_outputs`` rewrites every session with real output;
``tests/docs/test_doc_outputs.py`` fails when one has drifted.

A block preceded by ``<!-- checked-by="TEST" -->`` is output no session can make; ``TEST``
reads it with :func:`checked` and compares it with a real run.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.enrich import snapshots

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose sessions are run; a page joins by marking its sessions.
PAGES = (
    "docs/index.md",
    "docs/enrichment.md",
    "docs/finance.md",
    "docs/plan.md",
    "docs/policy-reference.md",
    "docs/reading-cost-files.md",
    "docs/tag-compliance.md",
)
SESSION = re.compile(r'<!-- docs-output(?: setup="(?P<setup>[^"]*)")? -->\n```console\n(?P<body>.*?)```\n', re.S)
FILE = re.compile(
    r'<!-- docs-file path="(?P<path>[^"]+)"(?: patch="(?P<patch>[^"]+)")? -->\n```[^\n]*\n(?P<body>.*?)```\n', re.S
)
EXITS = re.compile(r"#\s*exits (\d+)\s*$")
SNAPSHOT_TIME = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)


class _SnapshotClock(datetime):
    """``datetime`` whose ``now`` is ``SNAPSHOT_TIME``, for the snapshot module only."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
        return SNAPSHOT_TIME.astimezone(tz)


@dataclass(frozen=True)
class Session:
    page: str
    line: int  # of the ```console fence
    setup: tuple[str, ...]
    commands: tuple[tuple[str, str, int], ...]  # (as written, with its continuation lines; as run; exit code)
    body: str  # as written
    span: tuple[int, int]  # of ``body`` in the page
    files: tuple[tuple[str, str], ...] = ()  # (path, content) of the page's files written before this session


def sessions(page: str, text: str | None = None) -> list[Session]:
    """The sessions of ``page`` (its text given, or read from the repository)."""
    text = (ROOT / page).read_text(encoding="utf-8") if text is None else text
    files = [
        (m.start(), m["path"], _patched(m["patch"], m["body"]) if m["patch"] else m["body"])
        for m in FILE.finditer(text)
    ]
    found = []
    for match in SESSION.finditer(text):
        commands: list[list[str]] = []  # the lines of each command
        for line in match["body"].splitlines():
            if line.startswith("$ "):
                commands.append([line[2:]])
            elif commands and _continues(commands[-1][-1]):
                commands[-1].append(line)
        setup = tuple(c.strip() for c in (match["setup"] or "").split(";") if c.strip())
        written = tuple(("\n".join(lines), " ".join(_joined(lines)), _exits(lines[-1])) for lines in commands)
        before = tuple((path, content) for at, path, content in files if at < match.start())
        files = [f for f in files if f[0] > match.start()]
        found.append(
            Session(
                page,
                text.count("\n", 0, match.start("body")),
                setup,
                written,
                match["body"],
                match.span("body"),
                before,
            )
        )
    return found


def _exits(line: str) -> int:
    """The exit code a command's last line says it ends with (``# exits 1``); 0 when it says none."""
    said = EXITS.search(line)
    return int(said[1]) if said else 0


def _patched(name: str, diff: str) -> str:
    """The repository's file ``name`` with the unified ``diff`` applied; every context line must match."""
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    at = 0  # lines of the original consumed
    for hunk in re.split(r"^(?=@@ )", diff, flags=re.M)[1:]:
        header, *body = hunk.splitlines(keepends=True)
        start = int(re.match(r"@@ -(\d+)", header)[1]) - 1  # type: ignore[index]
        out += lines[at:start]
        at = start
        for line in body:
            if line[:1] in (" ", "-"):
                assert lines[at].rstrip("\n") == line[1:].rstrip("\n"), (
                    f"{name}:{at + 1}: the diff expects {line[1:]!r}"
                )
                at += 1
            if line[:1] in (" ", "+"):
                out.append(line[1:])
    return "".join(out + lines[at:])


def _continues(line: str) -> bool:
    """A line continues when it ends in a backslash, before any comment."""
    return line.split(" #", 1)[0].rstrip().endswith("\\")


def _joined(lines: list[str]) -> list[str]:
    return [line.split(" #", 1)[0].rstrip().removesuffix("\\").strip() for line in lines]


@contextmanager
def workspace(tmp: Path, monkeypatch) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    shutil.copytree(ROOT / "policies", tmp / "policies")  # a copy: a page may add a proposed policy beside it
    for name in [n for n in os.environ if n.startswith("CHARGEBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHARGEBACK_LOCALE", "en_US")
    monkeypatch.setattr(snapshots, "datetime", _SnapshotClock)
    monkeypatch.chdir(tmp)
    yield tmp


def run(command: str, tmp: Path, exits: int = 0) -> str:
    """What ``command`` prints (stdout and stderr, as a terminal shows them); fails unless it exits ``exits``."""
    words = shlex.split(command, comments=True)
    head = None
    if "|" in words:
        words, pipe = words[: words.index("|")], words[words.index("|") + 1 :]
        assert pipe[:2] == ["head", "-n"] and len(pipe) == 3, f"only '| head -n N' is supported: {command}"
        head = int(pipe[2])
    args = [str(tmp) + w[4:] if w.startswith("/tmp/") else w for w in words[1:]]
    if words[0] == "sqlite3":
        assert len(args) == 2 and exits == 0, f"sqlite3 takes a database and one SQL text: {command}"
        with sqlite3.connect(tmp / args[0]) as connection:
            connection.executescript(args[1])
        return ""
    assert words[0] == "chargeback", f"a session runs chargeback and sqlite3 commands only: {command}"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == exits, f"{command} exited {result.exit_code}, not {exits}:\n{result.output}"
    lines = result.output.replace(str(tmp) + "/", "/tmp/").splitlines()
    return "\n".join(lines[:head] if head is not None else lines)


def replay(session: Session, tmp: Path) -> str:
    """The session as it really goes: each command, then what it prints."""
    for path, content in session.files:
        (tmp / path.removeprefix("/tmp/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp / path.removeprefix("/tmp/")).write_text(content, encoding="utf-8")
    for command in session.setup:
        run(command, tmp)
    out = []
    for written, command, exits in session.commands:
        out.append("$ " + written)
        printed = run(command, tmp, exits)
        if printed:
            out.append(printed)
    return "\n".join(out) + "\n"


def drifted(found: list[Session], tmp: Path) -> list[str]:
    """A located message with a diff for every session whose documented output is not the real one."""
    problems = []
    for session in found:
        real = replay(session, tmp)
        if real != session.body:
            diff = "".join(
                difflib.unified_diff(
                    session.body.splitlines(keepends=True), real.splitlines(keepends=True), "documented", "real run"
                )
            )
            problems.append(
                f"{session.page}:{session.line}: the session has drifted "
                f"(python -m tests.docs.regenerate_outputs)\n{diff}"
            )
    return problems


CHECKED = re.compile(
    r'<!-- checked-by="(?P<test>[^"]+)" -->\n(?:```[^\n]*\n(?P<fenced>.*?)```\n|(?P<table>(?:\|[^\n]*\n)+))', re.S
)


def checked(page: str, test: str) -> list[str]:
    """The blocks of ``page`` that ``<!-- checked-by="TEST" -->`` gives to ``test``: a fenced block's text, or a table.

    For output that a docs session cannot make (a third-party install, a corpus of files), the
    test named compares the block with its real run; ``tests/docs`` checks that it does.
    """
    text = (ROOT / page).read_text(encoding="utf-8")
    return [m["fenced"] if m["fenced"] is not None else m["table"] for m in CHECKED.finditer(text) if m["test"] == test]
