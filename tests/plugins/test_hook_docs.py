"""Every hookspec is documented in docs/plugin-hooks.md, with its exact parameters."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from chargeback_engine import hookspecs

DOC = Path(__file__).parents[2] / "docs" / "plugin-hooks.md"
HEADING = re.compile(r"^## (chargeback_\w+)\(([^)]*)\)$", re.MULTILINE)


def live_hooks() -> dict[str, list[str]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def documented_hooks() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    return {name: [p.strip() for p in params.split(",") if p.strip()] for name, params in HEADING.findall(text)}


def test_every_hook_is_documented_with_its_signature():
    assert live_hooks(), "found no hookspecs: has the marker attribute changed?"
    assert documented_hooks() == live_hooks()


def test_every_hook_follows_the_naming_rule():
    for name in live_hooks():
        assert re.fullmatch(r"chargeback_register_[a-z]+s|chargeback_[a-z_]+_[a-z]+ed", name), name
