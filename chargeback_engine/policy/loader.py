"""Load policy files into a :class:`PolicySet`.

This first cut parses with ruamel.yaml's round-trip loader (for positions) and builds the
model; the hardened loader and layered validation replace the parsing step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.model import PolicySet, SourceLocation

POLICY_TEST_SUFFIX = "_test.yaml"


def policy_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories to the ``*.yaml`` policies in them (policy tests excluded), sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(f for f in sorted(p.glob("*.yaml")) if not f.name.endswith(POLICY_TEST_SUFFIX))
        else:
            files.append(p)
    return files


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _locator(root: Any, file: str):  # type: ignore[no-untyped-def]
    def locate(path: tuple[str | int, ...]) -> SourceLocation:
        node, line, col = root, 0, 0
        for step in path:
            if isinstance(step, int):
                line, col = node.lc.item(step)
            else:
                line, col = node.lc.value(step)
            node = node[step]
        return SourceLocation(file, line + 1, col + 1)

    return locate


def load_policies(paths: Iterable[str | Path]) -> PolicySet:
    policies = []
    for path in policy_files(paths):
        root = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
        policies.append(build_policy(_plain(root), path=str(path), locate=_locator(root, str(path))))
    return PolicySet(tuple(policies))
