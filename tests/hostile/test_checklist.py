"""The checklist in README.md names tests that exist: a renamed or deleted test breaks it here,
not silently in the list that says every case of issue 18 is covered."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = Path(__file__).with_name("README.md")
#: ``path.py`` or ``path.py::test_name`` or ``::test_name`` (same file as the last path) in backticks.
REFERENCE = re.compile(r"`((?:[\w./-]+\.py)?)(?:::(\w+))?`")


def _file(name: str) -> Path:
    return REPO / name if name.startswith("plugins/chargeback-") else REPO / "tests" / name


def _functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.FunctionDef)}


def test_every_test_the_checklist_names_exists() -> None:
    named: list[tuple[str, str | None]] = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        last = None
        for file, function in REFERENCE.findall(line):
            last = file or last
            if last and (file or function):
                named.append((last, function or None))
    assert len({file for file, _ in named}) >= 20 and sum(f is not None for _, f in named) >= 60
    missing = [f"{file}::{function}" if function else file for file, function in named if not _file(file).is_file()]
    missing += [
        f"{file}::{function}"
        for file, function in named
        if function and _file(file).is_file() and function not in _functions(_file(file))
    ]
    assert not missing, missing
