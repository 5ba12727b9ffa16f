"""Load and validate policy files: the public entry points of the policy package.

Each file goes through the layers in order: YAML (``policy.yaml``), then the assembled
schema, then semantics (``policy.validate``). Within a layer every problem is reported; a
file that fails a layer skips the later ones, which could only guess at its meaning. (A
YAML-layer error that leaves the data intact, such as an unquoted ``012``, still lets the
schema run.) The check across files, overlapping effective windows, uses the files that
passed every layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import structlog
from jsonschema import Draft202012Validator, FormatChecker

from chargeback_engine.errors import Diagnostic, PolicyError
from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager
from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.match import compile_regex
from chargeback_engine.policy.policy_model import Policy, PolicySet, SourceLocation
from chargeback_engine.policy.schema import assemble_schema
from chargeback_engine.policy.validate import Semantics, overlapping_windows, schema_diagnostics
from chargeback_engine.policy.yaml import JsonPath, YamlDocument, read_yaml_file

log = structlog.get_logger(__name__)

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


def validate(paths: Iterable[str | Path], registry: Registry | None = None) -> list[Diagnostic]:
    """Every error and warning about the policies at ``paths`` (files or directories), sorted.

    Without ``registry``, the components of the default plugin manager are used.
    """
    return _check(paths, registry).diagnostics


def load_policies(paths: Iterable[str | Path], registry: Registry | None = None) -> PolicySet:
    """Validate and load policies; raises :class:`PolicyError` carrying every diagnostic."""
    result = _check(paths, registry)
    if any(d.severity == "error" for d in result.diagnostics):
        raise PolicyError(result.diagnostics)
    for warning in result.diagnostics:
        log.warning("policy warning", diagnostic=str(warning))
    return PolicySet(tuple(policy for _, policy in result.policies))


@dataclass
class _Result:
    diagnostics: list[Diagnostic]
    policies: list[tuple[YamlDocument, Policy]]


def _check(paths: Iterable[str | Path], registry: Registry | None) -> _Result:
    registry = registry if registry is not None else build_registry(get_plugin_manager())
    formats = FormatChecker()
    formats.checks("regex", raises=ValueError)(compile_regex)  # the engine that will run it judges it
    validator = Draft202012Validator(assemble_schema(registry), format_checker=formats)
    diagnostics: list[Diagnostic] = []
    policies: list[tuple[YamlDocument, Policy]] = []
    paths = list(paths)
    files = policy_files(paths)
    if not files:
        where = ", ".join(map(str, paths)) or "."
        diagnostics.append(Diagnostic(where, 1, 1, "$", "no policy files (*.yaml) found"))
    for file in files:
        document, found = read_yaml_file(file)
        diagnostics.extend(found)
        if document is None:
            continue
        schema_errors = schema_diagnostics(document, validator, already={d.path for d in found})
        diagnostics.extend(schema_errors)
        if found or schema_errors:
            continue
        policy = build_policy(document.data, path=str(file), locate=_locator(document))
        diagnostics.extend(Semantics(document, policy, registry).run())
        policies.append((document, policy))
    diagnostics.extend(overlapping_windows(policies))
    return _Result(sorted(set(diagnostics)), policies)


def _locator(document: YamlDocument) -> Callable[[JsonPath], SourceLocation]:
    return lambda path: SourceLocation(document.file, *document.position(path))
