"""Build the immutable :class:`Policy` from a validated policy document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from chargeback_engine.policy.match import TagNormalizer, compile_condition
from chargeback_engine.policy.policy_model import (
    AllocationSpec,
    CostCenter,
    Driver,
    Policy,
    Rule,
    SourceLocation,
    Stage,
    content_hash,
)

Locate = Callable[[tuple["str | int", ...]], SourceLocation]


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def build_policy(document: Mapping[str, Any], *, path: str, locate: Locate) -> Policy:
    """Turn a document that already passed validation into a :class:`Policy`.

    Validation also builds one from the part of a document that passed (``validate.valid_part``),
    where a wrong ``name`` or ``version`` is left out: they read as empty there.

    ``locate`` maps a JSON path inside the document to its file:line:column, so every
    rule and stage remembers where it was written.
    """
    metadata = document["metadata"]
    spec = document["spec"]
    effective = metadata.get("effective", {})
    tag_doc = spec.get("tags", {})
    normalize = tag_doc.get("normalize", {})
    plain = TagNormalizer(keys=normalize.get("keys", "lower"), strip=normalize.get("strip", True))
    tags = TagNormalizer(
        keys=plain.keys,
        strip=plain.strip,
        aliases={plain.normalize_key(k): plain.normalize_key(v) for k, v in tag_doc.get("aliases", {}).items()},
        on_collision=normalize.get("on_collision", "prefer-exact"),
    )
    rules = tuple(
        sorted(
            (
                Rule(
                    id=r["id"],
                    priority=int(r["priority"]),
                    when=compile_condition(r.get("when"), tags),
                    allocate=AllocationSpec.from_document(r["allocate"]),
                    location=locate(("spec", "rules", i)),
                    description=r.get("description", ""),
                )
                for i, r in enumerate(spec.get("rules", []))
            ),
            key=lambda rule: -rule.priority,
        )
    )
    stages = tuple(
        Stage(
            pool=s["pool"], allocate=AllocationSpec.from_document(s["allocate"]), location=locate(("spec", "stages", i))
        )
        for i, s in enumerate(spec.get("stages", []))
    )
    drivers = tuple(
        Driver(
            id=driver_id,
            file=d.get("file"),
            inline=tuple(
                (str(row["period"]), row["cost_center"], Decimal(str(row["quantity"]))) for row in d.get("inline", [])
            ),
        )
        for driver_id, d in spec.get("drivers", {}).items()
    )
    cost_centers = tuple(
        CostCenter(
            id=cc["id"],
            name=cc.get("name", cc["id"]),
            mode=cc.get("mode", "showback"),
            gl_account=cc.get("gl_account"),
            entity=cc.get("entity"),
            shared=cc.get("shared", False),
            owner=cc.get("owner"),
        )
        for cc in spec.get("cost_centers", [])
    )
    return Policy(
        name=metadata.get("name", ""),
        version=str(metadata.get("version", "")),
        effective_from=_date(effective.get("from", "1970-01-01")),
        effective_until=_date(effective["until"]) if effective.get("until") else None,
        currency=spec.get("currency", "USD"),
        cost_column=spec.get("cost_column", "EffectiveCost"),
        unallocated=spec.get("unallocated", "UNALLOCATED"),
        tags=tags,
        cost_centers=cost_centers,
        drivers=drivers,
        rules=rules,
        stages=stages,
        document=document,
        path=path,
        content_hash=content_hash(document),
    )
