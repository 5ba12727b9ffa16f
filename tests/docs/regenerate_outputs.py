"""Rewrite every ``<!-- docs-output -->`` session in docs/ with what the commands really print.

Run from the repository root: ``python -m tests.docs.regenerate_outputs``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.docs.sessions import PAGES, ROOT, replay, sessions, workspace

if __name__ == "__main__":
    for page in PAGES:
        found = sessions(page)
        with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
            with workspace(Path(tmp), monkeypatch) as where:
                real = [replay(s, where) for s in found]  # in order: later sessions see what earlier ones wrote
        text = (ROOT / page).read_text(encoding="utf-8")
        for session, body in reversed(list(zip(found, real))):  # from the end, so earlier spans stay valid
            text = text[: session.span[0]] + body + text[session.span[1] :]
        (ROOT / page).write_text(text, encoding="utf-8")
        print(f"rewrote {len(real)} session(s) in {page}")
