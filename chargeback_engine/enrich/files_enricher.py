"""``files``: tags from a CMDB export, a CSV or YAML file that maps ids to tags.

CSV: a header row; the ``key_column`` holds the resource id, resource group or account, an
optional ``scope`` column says which (else the ``scope`` option does), and every other
non-empty cell is a tag. YAML: ``resources:``, ``resource_groups:`` and ``accounts:``, each
a mapping of id to tags, read by the policy's hardened reader (no anchors, aliases or
custom tags), so a CMDB file cannot do what a policy file may not.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from chargeback_engine.enrich.model import SCOPES, Scope, TagRecord, base_options
from chargeback_engine.errors import InputError
from chargeback_engine.policy.yaml import read_yaml_text

NAME = "files"

#: A CMDB export is larger than a policy, but a YAML file this large is a mistake.
MAX_BYTES = 64 * 1024 * 1024

_YAML_SECTIONS: dict[str, Scope] = {"resources": "resource", "resource_groups": "resource-group", "accounts": "account"}


class FilesEnricher:
    """Reads a CMDB file; its path is relative to the working directory, like source paths."""

    name = NAME
    options_schema: Mapping[str, Any] = base_options(
        NAME,
        "Tags from a CMDB file: CSV (one row per id) or YAML (resources/resource_groups/accounts).",
        {
            "path": {"type": "string", "minLength": 1, "maxLength": 1024},
            "format": {"enum": ["auto", "csv", "yaml"], "default": "auto"},
            "scope": {
                "enum": list(SCOPES),
                "default": "resource",
                "description": "CSV: what the key column holds, unless a scope column says per row.",
            },
            "key_column": {"type": "string", "minLength": 1, "default": "id", "description": "CSV: the id column."},
        },
        required=("path",),
    )

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        path = Path(options["path"])
        text = _read_text(path)
        fmt = options.get("format", "auto")
        if fmt == "yaml" or (fmt == "auto" and path.suffix.lower() in (".yaml", ".yml")):
            yield from _yaml_records(text, path)
        else:
            yield from _csv_records(text, path, options.get("key_column", "id"), options.get("scope", "resource"))


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the CMDB file: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB; split it or export CSV")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: the file is not valid UTF-8 text") from None


def _csv_records(text: str, path: Path, key_column: str, default_scope: str) -> Iterator[TagRecord]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if key_column not in (reader.fieldnames or []):
        raise InputError(f"{path}:1: no {key_column!r} column (the header has {', '.join(reader.fieldnames or [])})")
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InputError(f"{path}:{line}: more cells than the header has columns")
        key = (row.pop(key_column) or "").strip()
        scope = (row.pop("scope", None) or default_scope).strip()
        if not key:
            raise InputError(f"{path}:{line}: column {key_column!r} is empty")
        if scope not in SCOPES:
            raise InputError(f"{path}:{line}: scope {scope!r} is not one of {', '.join(SCOPES)}")
        yield TagRecord(scope, key, {k: v.strip() for k, v in row.items() if v and v.strip()})


def _yaml_records(text: str, path: Path) -> Iterator[TagRecord]:
    document, diagnostics = read_yaml_text(text, str(path))
    errors = [d for d in diagnostics if d.severity == "error"]
    if document is None or errors:
        raise InputError(str(errors[0]) if errors else f"{path}: not a YAML document")
    data = document.data
    if not isinstance(data, dict) or not set(data) <= set(_YAML_SECTIONS):
        raise InputError(str(document.diagnostic((), f"expected a mapping with {', '.join(_YAML_SECTIONS)}")))
    for section, scope in _YAML_SECTIONS.items():
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise InputError(str(document.diagnostic((section,), "expected a mapping of id to tags")))
        for key, tags in entries.items():
            if not isinstance(tags, dict) or any(isinstance(v, dict | list) for v in tags.values()):
                raise InputError(str(document.diagnostic((section, key), "expected a mapping of tag to text")))
            yield TagRecord(scope, str(key), {str(k): str(v) for k, v in tags.items() if v is not None})
