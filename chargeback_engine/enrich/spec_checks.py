"""Semantic checks of ``spec.enrich`` that the schema cannot express, located like every policy error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chargeback_engine.enrich.model import BILL, entry_id
from chargeback_engine.policy.checks import suggestion

Report = Callable[..., None]  # (path, message): the validator's located report


def check_enrich(spec: Mapping[str, Any], report: Report) -> None:
    """Source ids are unique and not ``bill``; every precedence id is ``bill`` or a source id."""
    enrich = spec.get("enrich") or {}
    ids: list[str] = []
    for index, entry in enumerate(enrich.get("sources", [])):
        source_id = entry_id(entry)
        if source_id in ids or source_id == BILL:
            report(
                ("spec", "enrich", "sources", index),
                f"source id {source_id!r} is {'reserved for the bill' if source_id == BILL else 'used twice'}; "
                "give each entry its own `id`",
            )
        ids.append(source_id)
    known = [BILL, *ids]
    precedence = enrich.get("precedence", {})
    lists: list[tuple[tuple[str, ...], Any]] = [
        (("spec", "enrich", "precedence", "default"), precedence.get("default", []))
    ]
    lists += [
        (("spec", "enrich", "precedence", "keys", key), order) for key, order in precedence.get("keys", {}).items()
    ]
    for path, order in lists:
        for position, name in enumerate(order):
            if name not in known:
                report(
                    (*path, position),
                    f"{name!r} is not bill or a source id ({', '.join(known)}){suggestion(name, known)}",
                )
