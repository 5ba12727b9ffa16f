"""Validation never raises on a damaged policy: every damage becomes located diagnostics.

Each case damages the valid policy at one place (every value in it, in turn): the value is
deleted, made null, or replaced by a list or by an unknown cost center. JSON is YAML, so
the damaged document is written as JSON.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chargeback_engine import validate
from chargeback_engine.plugins import Registry
from chargeback_engine.policy.yaml import read_yaml_text

from .conftest import VALID_POLICY

_BASE = read_yaml_text(VALID_POLICY, "base.yaml")[0]
assert _BASE is not None
PATHS = sorted((path for path in _BASE.values if path), key=str)
DELETE = object()


def damaged(path: tuple[Any, ...], value: Any) -> str:
    document = json.loads(json.dumps(_BASE.data, default=str))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(document, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_damage_anywhere_gives_diagnostics_never_an_exception(tmp_path: Path, registry: Registry, path: Any) -> None:
    for index, value in enumerate([DELETE, None, [1, {"method": "x"}], "CC-404"]):
        policy = tmp_path / f"damaged-{index}.yaml"
        policy.write_text(damaged(path, value), encoding="utf-8")
        for diagnostic in validate([policy], registry):
            assert diagnostic.file == str(policy) and diagnostic.line >= 1 and diagnostic.path.startswith("$")
