"""The assembled policy schema: valid 2020-12, strict, editor-friendly, and in sync with the file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from chargeback_engine.cli import main
from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager
from chargeback_engine.policy.schema import SCHEMA_ID, assemble_schema, render_schema

SCHEMA_FILE = Path(__file__).parents[2] / "schemas" / "policy.v1.schema.json"


def subschemas(schema: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(schema, Mapping):
        yield schema
        for value in schema.values():
            yield from subschemas(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from subschemas(item)


def test_the_schema_file_is_the_live_assembly_with_the_builtin_plugins(builtin_registry: Registry) -> None:
    """If this fails, regenerate the file: python -m tests.policy.regenerate_schema"""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(assemble_schema(builtin_registry))


def test_the_schema_file_is_a_valid_draft_2020_12_schema_with_an_id() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID


def test_plugin_fragments_are_checked_and_assembled(registry: Registry) -> None:
    schema = assemble_schema(registry)
    Draft202012Validator.check_schema(schema)
    defs = schema["$defs"]
    assert defs["allocate"]["oneOf"] == [{"$ref": f"#/$defs/allocate.{n}"} for n in sorted(registry.allocators)]
    assert defs["allocate.weights"]["properties"]["method"] == {"const": "weights"}
    assert defs["allocate.weights"]["required"][0] == "method"
    assert defs["source"]["oneOf"] == [{"$ref": "#/$defs/source.test-files"}]
    assert "oneOf" not in defs["export"]  # no exporter registered: only the discriminator is required


@pytest.mark.parametrize("use_plugins", [False, True])
def test_only_keywords_editors_support_and_closed_objects_everywhere(registry: Registry, use_plugins: bool) -> None:
    schema = assemble_schema(registry if use_plugins else Registry())
    for sub in subschemas(schema):
        assert not {"unevaluatedProperties", "prefixItems", "$dynamicRef", "$dynamicAnchor"} & set(sub)
        if "properties" in sub and isinstance(sub["properties"], Mapping) and "type" in sub:
            closed = sub.get("additionalProperties") is False
            keyed_map = "propertyNames" in sub and isinstance(sub.get("additionalProperties"), Mapping)
            assert closed or keyed_map, sub


def test_ids_and_texts_are_patterned_and_capped() -> None:
    defs = assemble_schema(Registry())["$defs"]
    assert defs["id"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$"
    assert defs["cost-center-id"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    assert defs["spec"]["properties"]["rules"]["maxItems"] == 1000
    assert defs["rule"]["properties"]["description"]["maxLength"] == 2000


def test_chargeback_schema_prints_the_assembled_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == assemble_schema(build_registry(get_plugin_manager()))
