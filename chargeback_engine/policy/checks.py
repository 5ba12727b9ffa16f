"""Helpers for allocators' ``check()``: the semantic checks many methods share.

An allocator's ``check(params, policy)`` returns :class:`~chargeback_engine.components.Finding`
objects whose paths are relative to its ``allocate:`` block; the kernel locates them in the
policy file. These helpers build such findings with the kernel's wording.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from chargeback_engine.components import Finding, JsonPath
from chargeback_engine.policy.model import Policy


def known_cost_centers(policy: Policy) -> frozenset[str]:
    """Cost centers money may go to: those declared, plus the unallocated bucket."""
    return frozenset(cc.id for cc in policy.cost_centers) | {policy.unallocated}


def suggestion(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for a near miss (case-insensitive first), else ``""``."""
    choices = list(choices)
    folded = {c.casefold(): c for c in choices}
    match = folded.get(name.casefold())
    if match is None:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.75)
        match = close[0] if close else None
    return f"; did you mean {match!r}?" if match else ""


def unknown_cost_centers(
    policy: Policy, ids: str | Mapping[str, Any] | Iterable[str], at: JsonPath = ()
) -> list[Finding]:
    """Findings for every cost-center id in ``ids`` that ``policy`` does not declare.

    ``ids`` is one id, a mapping keyed by ids (``splits``), or a list of ids (``among``);
    ``at`` is its path inside the ``allocate:`` block, e.g. ``("splits",)``.
    """
    if isinstance(ids, str):
        named: list[tuple[JsonPath, Any]] = [(at, ids)]
    elif isinstance(ids, Mapping):
        named = [((*at, key), key) for key in ids]
    else:
        named = [((*at, index), value) for index, value in enumerate(ids)]
    known = known_cost_centers(policy)
    return [
        Finding(path, f"unknown cost center {value!r}; declare it under spec.cost_centers"
                      f"{suggestion(str(value), known)}")
        for path, value in named
        if value not in known
    ]
