"""Every sample output in the marked docs sessions is what the commands really print.

When one drifts, rewrite them all: ``python -m tests.docs.regenerate_outputs``, and review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.sessions import CHECKED, PAGES, ROOT, drifted, sessions, workspace


@pytest.mark.parametrize("page", PAGES)
def test_documented_sessions_print_what_they_show(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = sessions(page)
    assert found, f"{page} has no <!-- docs-output --> session"
    with workspace(tmp_path, monkeypatch) as tmp:
        problems = drifted(found, tmp)
    assert not problems, "\n".join(problems)


def test_a_drifted_sample_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One digit changed in a documented output is caught and located."""
    text = (ROOT / "docs/index.md").read_text(encoding="utf-8")
    first = sessions("docs/index.md", text)[0]
    command = re.match(r"(?:[^\n]*\\\n)*[^\n]*\n", first.body)  # the command, continuation lines included
    assert command
    digit = re.search(r"\d", first.body[command.end() :])
    assert digit, "the first session of docs/index.md shows no number"
    at = first.span[0] + command.end() + digit.start()
    mutated = text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :]
    with workspace(tmp_path, monkeypatch) as tmp:
        problems = drifted(sessions("docs/index.md", mutated), tmp)
    assert problems and problems[0].startswith(f"docs/index.md:{first.line}: the session has drifted")


def test_a_command_that_does_not_exit_as_written_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A documented failure (``# exits 1``) that succeeds, or a failure that is not documented, is caught."""
    page = "<!-- docs-output -->\n```console\n$ chargeback validate policies/acme.yaml   # exits 1\n```\n"
    with workspace(tmp_path, monkeypatch) as tmp, pytest.raises(AssertionError, match="exited 0, not 1"):
        drifted(sessions("docs/finance.md", page), tmp)
    page = "<!-- docs-output -->\n```console\n$ chargeback period status --period 2026-13\n```\n"
    with workspace(tmp_path / "again", monkeypatch) as tmp, pytest.raises(AssertionError, match=", not 0:"):
        drifted(sessions("docs/finance.md", page), tmp)


def test_a_diff_that_no_longer_applies_fails() -> None:
    """A documented proposal whose context lines left the policy names the line it expected."""
    page = (
        '<!-- docs-file path="policies/x.yaml" patch="policies/acme.yaml" -->\n```diff\n'
        '@@ -9,1 +9,1 @@\n-  version: "1999.1"\n+  version: "1999.2"\n```\n'
    )
    with pytest.raises(AssertionError, match=r"policies/acme.yaml:9: the diff expects"):
        sessions("docs/plan.md", page)


def test_every_page_with_sessions_is_run() -> None:
    """A page that marks a session but is missing from PAGES would go stale unnoticed."""
    marked = {
        str(page.relative_to(ROOT))
        for page in (ROOT / "docs").glob("*.md")
        if page.name != "changelog.md" and re.search(r"^<!-- docs-(output|file)", page.read_text("utf-8"), re.M)
    }
    assert marked == set(PAGES)


def test_every_block_given_to_a_test_is_read_by_it() -> None:
    """A ``checked-by`` marker naming a test that does not read the page would check nothing."""
    for page in sorted((ROOT / "docs").glob("*.md")):
        for match in CHECKED.finditer(page.read_text("utf-8")):
            test = ROOT / match["test"]
            name = str(page.relative_to(ROOT))
            assert test.is_file(), f"{name}: checked-by names {match['test']}, which does not exist"
            assert f'checked("{name}", "{match["test"]}")' in test.read_text("utf-8"), (
                f"{name}: {match['test']} does not read its checked-by block"
            )


def test_every_console_sample_is_run() -> None:
    """A ``console`` block shows output, so it is a session or a block a named test compares.

    Diagrams (a folder layout, a state machine) are unlabelled fences, and commands to copy are ``sh``.
    """
    unchecked = [
        f"{page.relative_to(ROOT)}:{page.read_text('utf-8').count(chr(10), 0, match.start()) + 2}"
        for page in sorted((ROOT / "docs").glob("*.md"))
        for match in re.finditer(r"^(?P<marker>[^\n]*)\n```console\n", page.read_text("utf-8"), re.M)
        if not re.fullmatch(r"<!-- (docs-output|checked-by)\b.*-->", match["marker"])
    ]
    assert unchecked == []
