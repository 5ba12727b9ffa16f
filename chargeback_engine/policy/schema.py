"""The policy schema (JSON Schema 2020-12): the kernel's base plus every plugin's fragment.

Each allocator contributes the schema of its ``allocate:`` block, each collector the
schema of one ``sources:`` entry, each exporter the schema of one ``exports:`` entry. The
kernel pins the discriminating field (``method``, ``collector``, ``exporter``) of each
fragment to the component's name and offers them as a ``oneOf``, so a policy that uses a
plugin is validated as strictly as one that uses only built-ins.

Fragments may refer to the kernel's shared definitions: :data:`ALLOCATE_REF` for a nested
allocation block (``then:``, tiers), :data:`WHEN_REF` for a condition in the ``when:``
language and :data:`COST_CENTER_ID_REF` for a cost-center id. The semantic checks then
reach into those parts too (nested methods' checks, unknown FOCUS columns).

Only keywords that editors' YAML language servers understand are used (no
``unevaluatedProperties``, ``prefixItems`` or ``$dynamicRef``). ``patternErrorMessage`` is
the VS Code extension keyword for a readable pattern error; the validator uses it too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from chargeback_engine.plugins import Registered, Registry

SCHEMA_ID = "https://schemas.chargeback-engine.org/policy.v1.schema.json"
API_VERSION = "chargeback/v1"
KIND = "AllocationPolicy"

#: Refer to these from a component's schema fragment.
ALLOCATE_REF: Mapping[str, str] = {"$ref": "#/$defs/allocate"}
COST_CENTER_ID_REF: Mapping[str, str] = {"$ref": "#/$defs/cost-center-id"}
WHEN_REF: Mapping[str, str] = {"$ref": "#/$defs/when"}

ID_PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$"
COST_CENTER_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

_FIXED_KEYS = {"additionalProperties": False}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **_FIXED_KEYS, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _text(max_length: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, **extra}


def _list(items: Mapping[str, Any], max_items: int, **extra: Any) -> dict[str, Any]:
    return {"type": "array", "items": dict(items), "maxItems": max_items, **extra}


_DEFS: dict[str, Any] = {
    "id": {
        "type": "string",
        "pattern": ID_PATTERN,
        "patternErrorMessage": "must be kebab-case: lowercase letters, digits and '-', at most 63 characters",
    },
    "cost-center-id": {
        "type": "string",
        "pattern": COST_CENTER_ID_PATTERN,
        "patternErrorMessage": "a cost-center id is letters, digits, '.', '_' and '-', at most 64 characters",
    },
    "currency": {
        "type": "string",
        "pattern": "^[A-Z]{3}$",
        "patternErrorMessage": "must be an ISO 4217 currency code such as USD",
    },
    "date": {
        "type": "string",
        "format": "date",
        "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        "patternErrorMessage": "must be a date written YYYY-MM-DD",
    },
    "period": {
        "type": "string",
        "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$",
        "patternErrorMessage": "must be a billing period written YYYY-MM",
    },
    "tag-key": _text(128),
    "metadata": _object(
        {
            "name": {"$ref": "#/$defs/id", "description": "Names the policy in decisions and reports."},
            "version": _text(
                64,
                pattern="^[0-9A-Za-z][0-9A-Za-z.+_-]*$",
                patternErrorMessage="a version is letters, digits, '.', '+', '_' and '-'; quote it",
                description="Stamped on every allocation decision.",
            ),
            "description": _text(2000),
            "effective": _object(
                {
                    "from": {"$ref": "#/$defs/date", "description": "First day the policy governs."},
                    "until": {"$ref": "#/$defs/date", "description": "First day it no longer governs (exclusive)."},
                },
                required=("from",),
            ),
        },
        required=("name", "version"),
    ),
    "tags": _object(
        {
            "normalize": _object(
                {
                    "keys": {"enum": ["lower", "preserve"], "default": "lower"},
                    "strip": {"type": "boolean", "default": True},
                    "on_collision": {"enum": ["prefer-exact", "error"], "default": "prefer-exact"},
                }
            ),
            "aliases": {
                "type": "object",
                "description": "Source tag key -> canonical tag key, applied after normalisation.",
                "propertyNames": {"$ref": "#/$defs/tag-key"},
                "additionalProperties": {"$ref": "#/$defs/tag-key"},
                "maxProperties": 500,
            },
            "required": _list(
                {"$ref": "#/$defs/tag-key"},
                100,
                uniqueItems=True,
                description="Canonical tag keys every resource must carry (chargeback report tags).",
            ),
            "owner": {
                "$ref": "#/$defs/tag-key",
                "description": "The tag naming whom to ask about an untagged resource (default owner).",
            },
        }
    ),
    "enrich": _object(
        {
            "cache": _text(
                1024,
                description="Snapshot cache directory, relative to the policy file "
                "(default $CHARGEBACK_CACHE_DIR, else ~/.cache/chargeback).",
            ),
            "sources": _list({"$ref": "#/$defs/enricher"}, 20, minItems=1),
            "precedence": _object(
                {
                    "default": _list(
                        {"$ref": "#/$defs/id"},
                        21,
                        minItems=1,
                        uniqueItems=True,
                        description="bill and source ids, first asked first (default: bill, then the "
                        "sources in order).",
                    ),
                    "keys": {
                        "type": "object",
                        "description": "Canonical tag key -> its own order of bill and source ids.",
                        "propertyNames": {"$ref": "#/$defs/tag-key"},
                        "additionalProperties": _list({"$ref": "#/$defs/id"}, 21, minItems=1, uniqueItems=True),
                        "maxProperties": 100,
                    },
                }
            ),
        },
        required=("sources",),
    ),
    "cost-center": _object(
        {
            "id": {"$ref": "#/$defs/cost-center-id"},
            "name": _text(200),
            "mode": {"enum": ["showback", "chargeback", "auto"], "default": "showback"},
            "gl_account": _text(
                32,
                pattern="^[0-9A-Za-z][0-9A-Za-z._-]*$",
                patternErrorMessage="a GL account is letters, digits, '.', '_' and '-'; quote it",
            ),
            "entity": _text(64),
            "shared": {"type": "boolean", "default": False},
            "owner": _text(200),
            "description": _text(2000),
        },
        required=("id", "name"),
    ),
    "driver": {
        **_object(
            {
                "file": _text(
                    1024, description="CSV with columns period, cost_center, quantity; relative to the policy file."
                ),
                "inline": _list(
                    _object(
                        {
                            "period": {"$ref": "#/$defs/period"},
                            "cost_center": {"$ref": "#/$defs/cost-center-id"},
                            "quantity": {"type": "number", "minimum": 0},
                        },
                        required=("period", "cost_center", "quantity"),
                    ),
                    10000,
                    minItems=1,
                ),
                "unit": _text(64),
                "description": _text(2000),
            }
        ),
        "oneOf": [{"required": ["file"]}, {"required": ["inline"]}],
    },
    "match-value": {
        "type": ["string", "number", "boolean"],
        "minLength": 1,
        "maxLength": 256,
    },
    "matcher": {
        "anyOf": [
            {"$ref": "#/$defs/match-value"},
            {
                **_object(
                    {
                        "equals": {"$ref": "#/$defs/match-value"},
                        "in": _list({"$ref": "#/$defs/match-value"}, 1000, minItems=1),
                        "not_in": _list({"$ref": "#/$defs/match-value"}, 1000, minItems=1),
                        "exists": {"type": "boolean"},
                        "regex": {"type": "string", "format": "regex", "minLength": 1, "maxLength": 500},
                    }
                ),
                "minProperties": 1,
                "maxProperties": 1,
            },
        ]
    },
    "when": {
        "type": "object",
        "description": "Field -> matcher, all of which must hold. Fields are FOCUS columns or tags.<key>.",
        "properties": {
            "all": _list({"$ref": "#/$defs/when"}, 50, minItems=1),
            "any": _list({"$ref": "#/$defs/when"}, 50, minItems=1),
            "not": {"$ref": "#/$defs/when"},
        },
        "propertyNames": {
            "maxLength": 140,
            "pattern": "^(tags\\..+|[A-Za-z][A-Za-z0-9_]*)$",
            "patternErrorMessage": "a field is a FOCUS column (ServiceName) or tags.<key>",
        },
        "additionalProperties": {"$ref": "#/$defs/matcher"},
        "maxProperties": 50,
    },
    "rule": _object(
        {
            "id": {"$ref": "#/$defs/id"},
            "priority": {"type": "integer", "minimum": 0, "maximum": 1000000, "description": "Higher is tried first."},
            "description": _text(2000),
            "when": {"$ref": "#/$defs/when"},
            "allocate": ALLOCATE_REF,
        },
        required=("id", "priority", "allocate"),
    ),
    "stage": _object(
        {
            "pool": {"$ref": "#/$defs/cost-center-id"},
            "description": _text(2000),
            "allocate": ALLOCATE_REF,
        },
        required=("pool", "allocate"),
    ),
    "exchange-rate": _object(
        {
            "currency": {"$ref": "#/$defs/currency"},
            "rate": {"type": "number", "exclusiveMinimum": 0, "description": "Units of the policy currency per unit."},
            "date": {"$ref": "#/$defs/date", "description": "The rate applies from this day on."},
        },
        required=("currency", "rate", "date"),
    ),
    "spec": _object(
        {
            "currency": {"$ref": "#/$defs/currency"},
            "cost_column": {
                "enum": ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"],
                "default": "EffectiveCost",
            },
            "unallocated": {"$ref": "#/$defs/cost-center-id", "default": "UNALLOCATED"},
            "out_of_period": {"enum": ["error", "charge-to-run-period"], "default": "error"},
            "tags": {"$ref": "#/$defs/tags"},
            "enrich": {"$ref": "#/$defs/enrich"},
            "cost_centers": _list({"$ref": "#/$defs/cost-center"}, 10000, minItems=1),
            "drivers": {
                "type": "object",
                "propertyNames": {"$ref": "#/$defs/id"},
                "additionalProperties": {"$ref": "#/$defs/driver"},
                "maxProperties": 200,
            },
            "rules": _list({"$ref": "#/$defs/rule"}, 1000),
            "stages": _list({"$ref": "#/$defs/stage"}, 100),
            "pool_leftovers": {
                "enum": ["error", "unallocated"],
                "default": "error",
                "description": "Money still in a shared pool after the last stage: 'error' fails the run naming "
                "each pool and amount, writing nothing; 'unallocated' moves it to the unallocated "
                "cost center.",
            },
            "sources": _list({"$ref": "#/$defs/source"}, 50),
            "exports": _list({"$ref": "#/$defs/export"}, 50),
            "exchange_rates": _list({"$ref": "#/$defs/exchange-rate"}, 5000),
        },
        required=("currency", "cost_centers", "rules"),
    ),
}

BASE_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "chargeback-engine allocation policy, v1",
    **_object(
        {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": KIND},
            "metadata": {"$ref": "#/$defs/metadata"},
            "spec": {"$ref": "#/$defs/spec"},
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    ),
    "$defs": _DEFS,
}

#: (policy block, discriminating field, registry attribute, component attribute holding the schema)
_SLOTS = (
    ("allocate", "method", "allocators", "params_schema"),
    ("source", "collector", "collectors", "config_schema"),
    ("export", "exporter", "exporters", "options_schema"),
    ("enricher", "enricher", "enrichers", "options_schema"),
)


#: What the host adds to every collector's ``config_schema``, beside the pinned
#: ``collector``: the entry's ``id``, which a collector uses as its source id.
SOURCE_ID = {
    "type": "string",
    "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$",
    "description": "Names this source; a collector gives its lines this source id (x_SourceId).",
}


def assemble_schema(registry: Registry) -> dict[str, Any]:
    """The full policy schema for the components in ``registry``.

    Fragments were checked as JSON Schema 2020-12 when their plugins registered them.
    """
    schema = copy.deepcopy(dict(BASE_SCHEMA))
    defs = schema["$defs"]
    for block, discriminator, kind, attribute in _SLOTS:
        table: Mapping[str, Registered[Any]] = getattr(registry, kind)
        branches = []
        for name in sorted(table):
            fragment = _pinned(getattr(table[name].component, attribute), discriminator, name)
            if block == "source":
                own = {k: v for k, v in fragment["properties"].items() if k not in (discriminator, "id")}
                fragment["properties"] = {discriminator: {"const": name}, "id": SOURCE_ID, **own}
            defs[f"{block}.{name}"] = fragment
            branches.append({"$ref": f"#/$defs/{block}.{name}"})
        defs[block] = {"type": "object", "required": [discriminator]}
        if branches:
            defs[block]["oneOf"] = branches
    return schema


def _pinned(fragment: Mapping[str, Any], discriminator: str, name: str) -> dict[str, Any]:
    """A component's fragment as a closed object whose discriminator must be the component's name."""
    result = copy.deepcopy(dict(fragment))
    result.pop("$schema", None)
    result.pop("$id", None)
    result["type"] = "object"
    others = {k: v for k, v in result.get("properties", {}).items() if k != discriminator}
    result["properties"] = {discriminator: {"const": name}, **others}
    result["required"] = [discriminator, *(r for r in result.get("required", []) if r != discriminator)]
    result.setdefault("additionalProperties", False)
    return result


def render_schema(schema: Mapping[str, Any]) -> str:
    """The schema as the text of ``schemas/policy.v1.schema.json``."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
