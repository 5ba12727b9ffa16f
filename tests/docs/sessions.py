"""Console sessions in docs/ that are real: run them, compare them, rewrite them.

A fenced ``console`` block preceded by ``<!-- docs-output -->`` is a session: each ``$ ``
line (continued by a trailing backslash) is a ``chargeback`` command, and the lines up to
the next ``$ `` are what it prints. The sessions of one page run in order in one fresh
working directory holding the repository's ``policies/``, with no ``CHARGEBACK_*``
settings and the ``en_US`` number format, so later commands see what earlier ones wrote.
``setup="..."`` on the marker runs commands first without showing them (``;`` between
them). Paths under ``/tmp/`` live in the session's directory. A command may end in
``| head -n N``. Comments (``# ...``) are not passed on.

``python -m tests.docs.regenerate_outputs`` rewrites every session with real output;
``tests/docs/test_doc_outputs.py`` fails when one has drifted.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from chargeback_engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose sessions are run; a page joins by marking its sessions.
PAGES = ("docs/index.md", "docs/finance.md")
SESSION = re.compile(r'<!-- docs-output(?: setup="(?P<setup>[^"]*)")? -->\n```console\n(?P<body>.*?)```\n', re.S)


@dataclass(frozen=True)
class Session:
    page: str
    line: int  # of the ```console fence
    setup: tuple[str, ...]
    commands: tuple[tuple[str, str], ...]  # (as written, with its continuation lines; as run)
    body: str  # as written
    span: tuple[int, int]  # of ``body`` in the page


def sessions(page: str, text: str | None = None) -> list[Session]:
    """The sessions of ``page`` (its text given, or read from the repository)."""
    text = (ROOT / page).read_text(encoding="utf-8") if text is None else text
    found = []
    for match in SESSION.finditer(text):
        commands: list[list[str]] = []  # the lines of each command
        for line in match["body"].splitlines():
            if line.startswith("$ "):
                commands.append([line[2:]])
            elif commands and _continues(commands[-1][-1]):
                commands[-1].append(line)
        setup = tuple(c.strip() for c in (match["setup"] or "").split(";") if c.strip())
        written = tuple(("\n".join(lines), " ".join(_joined(lines))) for lines in commands)
        found.append(
            Session(page, text.count("\n", 0, match.start("body")), setup, written, match["body"], match.span("body"))
        )
    return found


def _continues(line: str) -> bool:
    """A line continues when it ends in a backslash, before any comment."""
    return line.split(" #", 1)[0].rstrip().endswith("\\")


def _joined(lines: list[str]) -> list[str]:
    return [line.split(" #", 1)[0].rstrip().removesuffix("\\").strip() for line in lines]


@contextmanager
def workspace(tmp: Path, monkeypatch) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    (tmp / "policies").symlink_to(ROOT / "policies", target_is_directory=True)
    for name in [n for n in os.environ if n.startswith("CHARGEBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CHARGEBACK_LOCALE", "en_US")
    monkeypatch.chdir(tmp)
    yield tmp


def run(command: str, tmp: Path) -> str:
    """What ``command`` prints (stdout and stderr, as a terminal shows them); fails on a non-zero exit."""
    words = shlex.split(command, comments=True)
    head = None
    if "|" in words:
        words, pipe = words[: words.index("|")], words[words.index("|") + 1 :]
        assert pipe[:2] == ["head", "-n"] and len(pipe) == 3, f"only '| head -n N' is supported: {command}"
        head = int(pipe[2])
    assert words[0] == "chargeback", f"a session runs chargeback commands only: {command}"
    args = [str(tmp) + w[4:] if w.startswith("/tmp/") else w for w in words[1:]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, f"{command} exited {result.exit_code}:\n{result.output}"
    lines = result.output.replace(str(tmp) + "/", "/tmp/").splitlines()
    return "\n".join(lines[:head] if head is not None else lines)


def replay(session: Session, tmp: Path) -> str:
    """The session as it really goes: each command, then what it prints."""
    for command in session.setup:
        run(command, tmp)
    out = []
    for written, command in session.commands:
        out.append("$ " + written)
        printed = run(command, tmp)
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
