"""Load and validate policy files: the public entry points of the policy package.

Each file goes through the layers in order: YAML (``policy.yaml``), then the assembled
schema, then semantics (``policy.validate``), and every independent problem is reported in
one pass. A file the YAML layer cannot trust skips the later layers; otherwise the schema
judges all of it (a YAML-layer error that leaves the data intact, such as an unquoted
``012``, still lets it run), and the semantic checks read the part of it that passed both,
leaving out each rule, stage, cost center, driver or field with a mistake. The check across
files, overlapping effective windows, uses the files that passed every layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker

from chargeback_engine.errors import Diagnostic, PolicyError
from chargeback_engine.logs import get_logger
from chargeback_engine.plugins import Registry
from chargeback_engine.policy.build import build_policy
from chargeback_engine.policy.match import compile_regex
from chargeback_engine.policy.policy_model import Policy, PolicySet, SourceLocation
from chargeback_engine.policy.schema import assemble_schema
from chargeback_engine.policy.validate import (
    Semantics,
    ValidPart,
    overlapping_windows,
    schema_diagnostics,
    valid_part,
)
from chargeback_engine.policy.yaml import JsonPath, YamlDocument, read_yaml_file

log = get_logger(__name__)

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


def validate(paths: Iterable[str | Path], registry: Registry) -> list[Diagnostic]:
    """Every error and warning about the policies at ``paths`` (files or directories), sorted.

    ``registry`` holds the components the policies may name; the caller builds it (the
    policy layer never loads plugins itself): ``build_registry(get_plugin_manager())``
    for the installed ones.
    """
    return _check(paths, registry).diagnostics


def load_policies(paths: Iterable[str | Path], registry: Registry) -> PolicySet:
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


def _check(paths: Iterable[str | Path], registry: Registry) -> _Result:
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
        flagged = {d.path for d in found}
        errors = list(validator.iter_errors(document.data))
        schema_errors = schema_diagnostics(document, errors, already=flagged)
        diagnostics.extend(schema_errors)
        part = valid_part(document, errors, flagged)
        if part is None:
            continue
        policy = build_policy(part.data, path=str(file), locate=_locator(part))
        diagnostics.extend(Semantics(part, policy, registry).run())
        if not (found or schema_errors):
            policies.append((document, policy))
    diagnostics.extend(overlapping_windows(policies))
    return _Result(sorted(set(diagnostics)), policies)


def _locator(part: ValidPart) -> Callable[[JsonPath], SourceLocation]:
    return lambda path: SourceLocation(part.file, *part.position(path))
