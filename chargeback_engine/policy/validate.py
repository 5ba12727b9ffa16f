"""The schema and semantic layers of policy validation (the YAML layer is ``policy.yaml``).

Every function here returns located diagnostics and never raises on a bad policy. The
semantic checks run on the part of a document that passed the other layers
(:func:`valid_part`), so one pass reports every independent mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from jsonschema.exceptions import ValidationError

from chargeback_engine.components import Finding
from chargeback_engine.enrich.spec_checks import check_enrich
from chargeback_engine.errors import Diagnostic, InputError
from chargeback_engine.focus import FOCUS_COLUMNS, MONEY_COLUMNS
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry, plugin_fault
from chargeback_engine.policy.checks import driver_rows, row_quantity, suggestion, unknown_cost_centers
from chargeback_engine.policy.match import TAG_PREFIX, TagNormalizer, covers
from chargeback_engine.policy.paths import contained_path
from chargeback_engine.policy.policy_model import Policy
from chargeback_engine.policy.schema import ALLOCATE_REF, WHEN_REF
from chargeback_engine.policy.yaml import JsonPath, Position, YamlDocument, format_path

#: FOCUS columns a ``when:`` may name: not money, not quantities, not the raw Tags text.
MATCHABLE_COLUMNS = tuple(
    c for c in FOCUS_COLUMNS if c not in MONEY_COLUMNS and c not in ("ConsumedQuantity", "PricingQuantity", "Tags")
)


# --- schema layer -------------------------------------------------------------------

_NOUNS = {"method": "allocation method", "collector": "collector", "exporter": "exporter"}


def schema_diagnostics(
    document: YamlDocument, errors: Iterable[ValidationError], already: set[str]
) -> list[Diagnostic]:
    found = [d for error in errors for d in _explain(error, document)]
    return [d for d in found if d.path not in already]


def _explain(error: ValidationError, doc: YamlDocument) -> list[Diagnostic]:
    """Turn one jsonschema error into located diagnostics with a message a policy author can act on."""
    path: JsonPath = tuple(error.absolute_path)
    kind, expected, instance = error.validator, error.validator_value, error.instance
    if kind in ("oneOf", "anyOf"):
        return _explain_alternatives(error, doc)
    if "propertyNames" in error.schema_path:
        hint = error.schema.get("patternErrorMessage") or error.message
        return [doc.diagnostic((*path, instance), f"field name {instance!r}: {hint}", key=True)]
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in instance if k not in allowed]
        return [doc.diagnostic((*path, k), _unknown("field", k, allowed), key=True) for k in extras]
    if kind == "type":
        return [doc.diagnostic(path, _type_message(expected, instance, doc.texts.get(path)))]
    if kind == "enum":
        choices = [str(c) for c in expected]
        hint = suggestion(str(instance), choices)
        return [doc.diagnostic(path, f"{_show(instance, doc, path)} is not one of {', '.join(choices)}{hint}")]
    if kind == "const":
        return [doc.diagnostic(path, f"must be {expected!r}, not {_show(instance, doc, path)}")]
    if kind == "pattern":
        hint = error.schema.get("patternErrorMessage") or f"must match {expected}"
        return [doc.diagnostic(path, f"{instance!r}: {hint}")]
    if kind == "format":
        if isinstance(error.cause, ValueError) and expected == "regex":
            return [doc.diagnostic(path, f"{instance!r} {error.cause}")]
        what = {"date": "date (YYYY-MM-DD)"}.get(expected, expected)
        return [doc.diagnostic(path, f"{instance!r} is not a valid {what}")]
    message = _LIMITS.get(kind)
    return [doc.diagnostic(path, message.format(expected, "" if expected == 1 else "s") if message else error.message)]


_LIMITS = {
    "minimum": "must be at least {0}",
    "maximum": "must be at most {0}",
    "exclusiveMinimum": "must be greater than {0}",
    "exclusiveMaximum": "must be less than {0}",
    "minLength": "must be at least {0} character{1} long",
    "maxLength": "must be at most {0} character{1} long",
    "minItems": "needs at least {0} item{1}",
    "maxItems": "has more than {0} item{1}",
    "minProperties": "needs at least {0} field{1}",
    "maxProperties": "allows at most {0} field{1}",
}


def _explain_alternatives(error: ValidationError, doc: YamlDocument) -> list[Diagnostic]:
    """Explain a failed ``oneOf``/``anyOf`` by the one alternative the author evidently meant.

    An alternative is ruled out when the value has the wrong type for it, or when its
    discriminator (``method``, ``collector``, ``exporter``) names another component.
    """
    path: JsonPath = tuple(error.absolute_path)
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    if not branches:  # valid under more than one alternative
        return [doc.diagnostic(path, _exactly_one(error.validator_value) or "matches more than one alternative")]
    mismatched = {i for i, errs in branches.items() if any(_rules_out(e) for e in errs)}
    meant = [errs for i, errs in sorted(branches.items()) if i not in mismatched]
    if len(meant) == 1:
        return [d for sub in meant[0] for d in _explain(sub, doc)]
    if meant:
        return [doc.diagnostic(path, _exactly_one(error.validator_value) or error.message)]
    discriminators = {e.relative_path[0] for errs in branches.values() for e in errs if e.validator == "const"}
    if discriminators:
        field = next(iter(discriminators))
        if not isinstance(error.instance, Mapping) or field not in error.instance:
            return []  # the missing field is reported on its own
        names = sorted(e.validator_value for errs in branches.values() for e in errs if e.validator == "const")
        return [doc.diagnostic((*path, field), _unknown(_NOUNS.get(field, field), error.instance[field], names))]
    types = list(
        dict.fromkeys(
            t for errs in branches.values() for e in errs if e.validator == "type" for t in _as_list(e.validator_value)
        )
    )
    return [doc.diagnostic(path, _type_message(types, error.instance, doc.texts.get(path)))]


def _rules_out(error: ValidationError) -> bool:
    at_root = len(error.relative_path) == 0
    return (error.validator == "type" and at_root) or (error.validator == "const" and len(error.relative_path) == 1)


def _exactly_one(alternatives: Any) -> str | None:
    """``oneOf: [{required: [a]}, {required: [b]}]`` reads as 'exactly one of a, b'."""
    if all(isinstance(a, Mapping) and set(a) == {"required"} for a in alternatives):
        names = ", ".join(repr(n) for a in alternatives for n in a["required"])
        return f"give exactly one of {names}"
    return None


def _as_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


_TYPE_NAMES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true/false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _type_message(expected: Any, instance: Any, text: str | None) -> str:
    names = [_TYPE_NAMES.get(t, t) for t in _as_list(expected)]
    wanted = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
    got = _describe(instance, text)
    if "string" in _as_list(expected) and text is not None and instance is not None:
        return f'expected {wanted}, got {got}; quote it ("{text}") to keep it as text'
    return f"expected {wanted}, got {got}"


def _describe(instance: Any, text: str | None) -> str:
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return f"the boolean {text or str(instance).lower()}"
    if isinstance(instance, (int, Decimal)):
        return f"the number {text or instance}"
    if isinstance(instance, str):
        return f"the text {instance!r}"
    return "a mapping" if isinstance(instance, Mapping) else "a list"


def _show(instance: Any, doc: YamlDocument, path: JsonPath) -> str:
    return doc.texts.get(path) or repr(instance)


def _unknown(noun: str, name: Any, known: Iterable[str]) -> str:
    known = sorted(known)
    hint = suggestion(str(name), known)
    if hint:
        return f"unknown {noun} {name!r}{hint}"
    if not known:
        return f"unknown {noun} {name!r}; none is registered (is its plugin installed and allowed?)"
    return f"unknown {noun} {name!r}; expected one of: {', '.join(known)}"


# --- what the semantic layer reads -------------------------------------------------

#: The objects the semantic checks stand on: never left out; a required field missing there stays absent.
_SKELETON: frozenset[JsonPath] = frozenset({(), ("metadata",), ("spec",)})
#: Blocks left out whole for a mistake anywhere inside, as their checks read them whole.
_WHOLE_BLOCKS = (("spec", "enrich"), ("spec", "tags"))
#: What :func:`valid_part` keeps of a left-out part that leaves nothing behind.
_GONE = object()


@dataclass
class ValidPart:
    """The part of a policy document that passed the YAML and schema layers, located in the original.

    A list item with a mistake (a rule, a stage, a source, a cost center), a driver, a
    whole ``tags:`` or ``enrich:`` block, or a field of ``metadata`` or ``spec`` is left
    out; the rest is schema-valid, so every semantic check can read it. A left-out cost
    center keeps its id and a left-out driver its name, so references to them are not
    reported as unknown too. Paths into ``data`` are turned back into the document's own
    (left-out list items shift the indices) before they are located.
    """

    document: YamlDocument
    data: Any
    kept: Mapping[JsonPath, list[int]]  # list path in the document -> the indices of its items kept

    @property
    def file(self) -> str:
        return self.document.file

    def original(self, path: JsonPath) -> JsonPath:
        result: JsonPath = ()
        for step in path:
            kept = self.kept.get(result)
            if kept is not None and isinstance(step, int) and 0 <= step < len(kept):
                step = kept[step]
            result = (*result, step)
        return result

    def position(self, path: JsonPath, *, key: bool = False) -> Position:
        return self.document.position(self.original(path), key=key)

    def diagnostic(self, path: JsonPath, message: str, *, severity: str = "error", key: bool = False) -> Diagnostic:
        return self.document.diagnostic(self.original(path), message, severity=severity, key=key)


def valid_part(document: YamlDocument, errors: Iterable[ValidationError], flagged: set[str]) -> ValidPart | None:
    """The part of ``document`` without the schema ``errors`` and the YAML layer's ``flagged`` paths.

    None when the skeleton itself is broken (``metadata`` or ``spec`` missing or not a mapping).
    """
    wrong: set[JsonPath] = {path for path in document.values if format_path(path) in flagged} if flagged else set()
    for error in errors:
        path: JsonPath = tuple(error.absolute_path)
        if error.validator == "required" and path in _SKELETON:
            continue
        if error.validator == "additionalProperties":
            allowed = error.schema.get("properties", {})
            wrong.update((*path, k) for k in error.instance if k not in allowed)
        elif "propertyNames" in error.schema_path:
            wrong.add((*path, error.instance))
        else:
            wrong.add(path)
    left_out = {_unit(path) for path in wrong}
    data = document.data
    if left_out & _SKELETON or not (
        isinstance(data, Mapping) and all(isinstance(data.get(k), Mapping) for k in ("metadata", "spec"))
    ):
        return None
    if not left_out:
        return ValidPart(document, data, {})
    kept: dict[JsonPath, list[int]] = {}

    def keep(value: Any, at: JsonPath) -> Any:
        if at in left_out:
            return _stand_in(document, value, at)
        if isinstance(value, Mapping):
            return {k: v for k, v in ((k, keep(v, (*at, k))) for k, v in value.items()) if v is not _GONE}
        if isinstance(value, list):
            parts = [(i, keep(v, (*at, i))) for i, v in enumerate(value)]
            kept[at] = [i for i, v in parts if v is not _GONE]
            return [v for _, v in parts if v is not _GONE]
        return value

    return ValidPart(document, keep(data, ()), kept)


def _unit(path: JsonPath) -> JsonPath:
    """What is left out for a mistake at ``path``: its driver or whole block, else the list item
    it is in, else its field of ``metadata`` or ``spec``."""
    if path[:2] == ("spec", "drivers"):
        return path[:3]
    if path[:2] in _WHOLE_BLOCKS:
        return path[:2]
    index = next((i for i, step in enumerate(path) if isinstance(step, int)), None)
    return path[: index + 1] if index is not None else path[:2]


def _stand_in(document: YamlDocument, value: Any, at: JsonPath) -> Any:
    """What stays of a left-out part: a cost center's id (as written) or a driver's name; else nothing."""
    if at[:2] == ("spec", "cost_centers") and len(at) == 3 and isinstance(value, Mapping) and "id" in value:
        written = value["id"] if isinstance(value["id"], str) else document.texts.get((*at, "id"))
        if written is not None:
            return {"id": written}
    if at[:2] == ("spec", "drivers") and len(at) == 3:
        return {}
    return _GONE


# --- semantic layer -----------------------------------------------------------------


class Semantics:
    """The checks a schema cannot express, over the schema-valid part of one policy document."""

    def __init__(self, doc: ValidPart, policy: Policy, registry: Registry):
        self.doc, self.policy, self.registry = doc, policy, registry
        self.spec: Mapping[str, Any] = doc.data["spec"]
        self.found: list[Diagnostic] = []
        self._driver_rows: dict[str, Sequence[Mapping[str, str | None]] | None] = {}

    def report(self, path: JsonPath, message: str, *, severity: str = "error", key: bool = False) -> None:
        self.found.append(self.doc.diagnostic(path, message, severity=severity, key=key))

    def run(self) -> list[Diagnostic]:
        self.effective_dates()
        self.duplicates("cost_centers", "id", "cost center id")
        self.duplicates("rules", "id", "rule id")
        self.duplicates("stages", "pool", "pool")
        self.equal_priorities()
        self.tag_aliases()
        self.drivers()
        self.when_fields()
        self.allocate_blocks()
        self.stage_cycles()
        self.amortized_stages()
        self.shadowed_rules()
        self.components("sources", "collector", "collectors")
        self.components("exports", "exporter", "exporters")
        check_enrich(self.spec, self.report)
        return self.found

    def effective_dates(self) -> None:
        effective = self.doc.data["metadata"].get("effective", {})
        for bound in ("from", "until"):
            if bound in effective and date.fromisoformat(effective[bound]).day != 1:
                self.report(
                    ("metadata", "effective", bound), "must be the first day of a month, as billing periods are months"
                )
        until = self.policy.effective_until
        if until is not None and until <= self.policy.effective_from:
            self.report(
                ("metadata", "effective", "until"), f"must be after effective.from ({self.policy.effective_from})"
            )

    def duplicates(self, section: str, field: str, noun: str) -> None:
        first: dict[Any, int] = {}
        for index, item in enumerate(self.spec.get(section, [])):
            value = item[field]
            if value in first:
                line, _ = self.doc.position(("spec", section, first[value], field))
                self.report(("spec", section, index, field), f"duplicate {noun} {value!r} (first used on line {line})")
            else:
                first[value] = index

    def equal_priorities(self) -> None:
        first: dict[int, int] = {}
        for index, rule in enumerate(self.spec.get("rules", [])):
            priority = rule["priority"]
            if priority in first:
                other = self.spec["rules"][first[priority]]["id"]
                self.report(
                    ("spec", "rules", index, "priority"),
                    f"priority {priority} is also used by rule {other!r}; equal priorities make the order ambiguous",
                )
            else:
                first[priority] = index

    def tag_aliases(self) -> None:
        tags = self.policy.tags
        plain = TagNormalizer(keys=tags.keys, strip=tags.strip)
        for source, target in self.spec.get("tags", {}).get("aliases", {}).items():
            canonical = plain.normalize_key(target)
            if tags.aliases.get(canonical, canonical) != canonical:
                self.report(
                    ("spec", "tags", "aliases", source),
                    f"alias target {target!r} is itself an alias of {tags.aliases[canonical]!r}; "
                    "aliases are not chained",
                )

    def drivers(self) -> None:
        for driver_id, driver in self.spec.get("drivers", {}).items():
            if not driver:
                continue  # left out for a mistake (valid_part); only its name stays
            if "file" in driver:
                try:
                    found = contained_path(self.doc.file, driver["file"]).is_file()
                except InputError as exc:
                    self.report(("spec", "drivers", driver_id, "file"), f"driver {exc}")
                    continue
                if not found:
                    self.report(
                        ("spec", "drivers", driver_id, "file"),
                        f"driver file {driver['file']!r} not found next to the policy",
                    )
            for index, row in enumerate(driver.get("inline", [])):
                at = ("spec", "drivers", driver_id, "inline", index, "cost_center")
                for finding in unknown_cost_centers(self.policy, row["cost_center"]):
                    self.report(at, finding.message)
            if "file" in driver:
                self.driver_file_rows(driver_id)
            self.driver_periods(driver_id)

    def driver_file_rows(self, driver_id: str) -> None:
        """What a run would refuse in a driver file, refused first: the first row whose cost
        center is not declared, and the first whose quantity is not a number, negative or not finite."""
        at = ("spec", "drivers", driver_id, "file")
        rows = self.driver_rows(driver_id) or []
        for number, row in enumerate(rows, start=1):
            findings = unknown_cost_centers(self.policy, str(row["cost_center"]))
            if findings:
                self.report(at, f"driver {driver_id!r}: data row {number}: {findings[0].message}")
                break
        for number, row in enumerate(rows, start=1):
            try:
                row_quantity(driver_id, number, row)
            except InputError as error:
                self.report(at, str(error))
                break

    def driver_rows(self, driver_id: str) -> Sequence[Mapping[str, str | None]] | None:
        """The driver's rows, read once; None (and an error) when its file cannot be read."""
        if driver_id not in self._driver_rows:
            driver = next((d for d in self.policy.drivers if d.id == driver_id), None)
            rows: Sequence[Mapping[str, str | None]] | None = None
            if driver is not None and (driver.file is None or _readable(self.doc.file, driver.file)):
                try:
                    rows = driver_rows(driver, self.doc.file)
                except InputError as error:
                    self.report(("spec", "drivers", driver_id, "file"), str(error))
            self._driver_rows[driver_id] = rows
        return self._driver_rows[driver_id]

    def driver_periods(self, driver_id: str) -> None:
        """Warn when the driver has no rows for any period of the policy's effective window.

        Validation knows no run period: a driver that covers some months of the window may
        be fed month by month. The run itself records, per decision, a driver with no rows.
        """
        rows = self.driver_rows(driver_id)
        until = self.policy.effective_until
        if rows is None or (until is not None and until <= self.policy.effective_from):
            return  # an unreadable file or a broken window is reported on its own
        first = str(Period.of(self.policy.effective_from))
        end = str(Period.of(until)) if until else None
        if not any(p and p >= first and (end is None or p < end) for p in (row["period"] for row in rows)):
            window = f"from {first}" + (f" until {end}" if end else "")
            self.report(
                ("spec", "drivers", driver_id),
                f"driver {driver_id!r} has no rows for any period of the policy's window ({window}): "
                "every allocation by it takes its fallback",
                severity="warning",
            )

    def when_fields(self) -> None:
        for index, rule in enumerate(self.spec.get("rules", [])):
            self._when(rule.get("when") or {}, ("spec", "rules", index, "when"))
        for at, block in self.blocks():
            registered = self.registry.allocators.get(block["method"])
            if registered is not None:
                for path, when in _declared(WHEN_REF, registered.component.params_schema, block, at):
                    self._when(when, path)

    def _when(self, when: Mapping[str, Any], at: JsonPath) -> None:
        for name, value in when.items():
            if name in ("all", "any"):
                for i, sub in enumerate(value):
                    self._when(sub, (*at, name, i))
            elif name == "not":
                self._when(value, (*at, name))
            elif not name.startswith(TAG_PREFIX) and name not in MATCHABLE_COLUMNS:
                if name in FOCUS_COLUMNS:
                    message = (
                        f"{name!r} cannot be matched on; rules match on attributes, not amounts "
                        "(use tags.<key> for tags)"
                    )
                else:
                    hint = suggestion(name, MATCHABLE_COLUMNS) or "; tags are written tags.<key>"
                    message = f"unknown FOCUS column {name!r}{hint}"
                self.report((*at, name), message, key=True)

    def blocks(self) -> Iterator[tuple[JsonPath, Mapping[str, Any]]]:
        """Every ``allocate:`` block: in rules, in stages, and nested inside other blocks."""
        for section in ("rules", "stages"):
            for index, item in enumerate(self.spec.get(section, [])):
                yield from self._with_nested(("spec", section, index, "allocate"), item["allocate"])

    def _with_nested(self, at: JsonPath, block: Mapping[str, Any]) -> Iterator[tuple[JsonPath, Mapping[str, Any]]]:
        yield at, block
        registered = self.registry.allocators.get(block["method"])
        if registered is not None:
            for path, nested in _declared(ALLOCATE_REF, registered.component.params_schema, block, at):
                yield from self._with_nested(path, nested)

    def allocate_blocks(self) -> None:
        drivers = self.spec.get("drivers", {})
        for at, block in self.blocks():
            registered = self.registry.allocators.get(block["method"])
            if registered is None:
                self.report((*at, "method"), _unknown("allocation method", block["method"], self.registry.allocators))
                continue
            if isinstance(block.get("driver"), str) and block["driver"] not in drivers:
                self.report((*at, "driver"), _unknown("driver", block["driver"], drivers))
            try:
                findings = list(registered.component.check(_params(block), self.policy))
            except Exception as exc:  # noqa: BLE001 - a plugin bug must be named, not dumped as a traceback
                what = f"failed to check its parameters: {type(exc).__name__}: {exc}"
                self.report(at, str(plugin_fault("allocator", registered, block["method"], what)))
                continue
            if not all(isinstance(f, Finding) for f in findings):
                what = f"returned {findings!r:.80} from check(), not a list of Findings"
                self.report(at, str(plugin_fault("allocator", registered, block["method"], what)))
                continue
            for finding in findings:
                self.report((*at, *finding.path), finding.message, severity=finding.severity)

    def stage_cycles(self) -> None:
        stages = self.spec.get("stages", [])
        pools: dict[str, int] = {}
        for index, stage in enumerate(stages):
            pools.setdefault(stage["pool"], index)
        for index, stage in enumerate(stages):
            for finding in unknown_cost_centers(self.policy, stage["pool"]):
                self.report(("spec", "stages", index, "pool"), finding.message)
        edges = {
            pool: self._feeds(("spec", "stages", i, "allocate"), stages[i]["allocate"], set(pools))
            for pool, i in pools.items()
        }
        cycles = _cycles({pool: sorted(fed) for pool, fed in edges.items()})
        looped = set()
        for cycle in cycles:
            steps = list(zip(cycle, [*cycle[1:], cycle[0]]))
            looped.update(steps)
            drivers = sorted({driver for a, b in steps if (driver := edges[a][b])})
            through = f" (through the rows of driver {', '.join(map(repr, drivers))})" if drivers else ""
            self.report(
                ("spec", "stages", pools[cycle[0]], "pool"),
                "shared-cost stages form a cycle: " + " -> ".join([*cycle, cycle[0]]) + through,
            )
        for pool, index in pools.items():
            for target, driver in sorted(edges[pool].items()):
                if pools[target] < index and (pool, target) not in looped:
                    listed = f"driver {driver!r} lists {target}, so " if driver else ""
                    self.report(
                        ("spec", "stages", index, "pool"),
                        f"stage {index + 1} (pool {pool}) feeds pool {target}, whose stage "
                        f"{pools[target] + 1} runs earlier: {listed}money sent there would stay in "
                        f"{target}; put {target}'s stage after this one",
                    )

    def _feeds(self, at: JsonPath, block: Mapping[str, Any], pools: set[str]) -> dict[str, str | None]:
        """The pools a stage can send money to, each with the driver whose rows name it (None: named outright)."""
        fed: dict[str, str | None] = dict.fromkeys(sorted(self._targets(at, block) & pools))
        for _, sub in self._with_nested(at, block):
            driver = sub.get("driver")
            if isinstance(driver, str) and not sub.get("among"):
                for row in self.driver_rows(driver) or []:
                    if row["cost_center"] in pools:
                        fed.setdefault(row["cost_center"], driver)
        return fed

    def amortized_stages(self) -> None:
        """A stage moves a pool within its period, so it cannot spread cost over months; the run
        would refuse it, so validation does first."""
        for index, stage in enumerate(self.spec.get("stages", [])):
            if stage["allocate"]["method"] == "amortized":
                self.report(
                    ("spec", "stages", index, "allocate", "method"),
                    f"stage for pool {stage['pool']!r} cannot use method 'amortized': a stage moves a "
                    "pool's cost within its period; amortize the line items in a rule instead",
                )

    def _targets(self, at: JsonPath, block: Mapping[str, Any]) -> set[str]:
        targets: set[str] = set()
        for path, sub in self._with_nested(at, block):
            registered = self.registry.allocators.get(sub["method"])
            if registered is not None:
                try:
                    targets |= set(registered.component.targets(_params(sub), self.policy))
                except Exception as exc:  # noqa: BLE001 - a plugin bug must be named, not dumped as a traceback
                    what = f"failed to name its targets: {type(exc).__name__}: {exc}"
                    self.report(path, str(plugin_fault("allocator", registered, sub["method"], what)))
        return targets

    def shadowed_rules(self) -> None:
        index_of = {rule["id"]: i for i, rule in reversed(list(enumerate(self.spec.get("rules", []))))}
        rules = self.policy.rules  # highest priority first
        for position, lower in enumerate(rules):
            for higher in rules[:position]:
                if higher.priority > lower.priority and covers(higher.when, lower.when):
                    line = higher.location.line
                    self.report(
                        ("spec", "rules", index_of[lower.id]),
                        f"rule {lower.id!r} never applies: rule {higher.id!r} (priority {higher.priority}, "
                        f"line {line}) is tried first and matches everything it matches",
                        severity="warning",
                    )
                    break

    def components(self, section: str, field: str, kind: str) -> None:
        table = getattr(self.registry, kind)
        for index, entry in enumerate(self.spec.get(section, [])):
            if entry[field] not in table:
                self.report(("spec", section, index, field), _unknown(_NOUNS[field], entry[field], table))


def _params(block: Mapping[str, Any]) -> dict[str, Any]:
    """An ``allocate:`` block as allocators receive it: without ``method``, like ``AllocationSpec.params``."""
    return {k: v for k, v in block.items() if k != "method"}


def _declared(ref: Mapping[str, str], schema: Any, value: Any, at: JsonPath) -> Iterator[tuple[JsonPath, Any]]:
    """Walk ``value`` along a component's ``schema``; yield the parts it declares with ``ref``.

    This is how the kernel finds the allocate blocks and ``when`` conditions nested in a
    method's parameters, whatever the method calls them (``then``, ``tiers``, ``filter``).
    """
    if not isinstance(schema, Mapping):
        return
    if schema.get("$ref") == ref["$ref"]:
        if isinstance(value, Mapping):
            yield at, value
        return
    if isinstance(value, Mapping):
        properties = schema.get("properties", {})
        for key, sub in value.items():
            yield from _declared(ref, properties.get(key, schema.get("additionalProperties")), sub, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _declared(ref, schema.get("items"), item, (*at, index))


def _cycles(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Each elementary cycle once, rotated to start at its smallest node (Johnson-light: graphs are tiny)."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in edges.get(node, []):
            if nxt == start:
                found.add(tuple(trail))
            elif nxt not in trail and nxt > start:
                walk(start, nxt, [*trail, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return [list(cycle) for cycle in sorted(found)]


def overlapping_windows(policies: list[tuple[YamlDocument, Policy]]) -> list[Diagnostic]:
    found = []
    ordered = sorted(policies, key=lambda item: (item[1].effective_from, item[1].name))
    for i, (doc, policy) in enumerate(ordered):
        for other_doc, other in ordered[:i]:
            if other.effective_until is None or other.effective_until > policy.effective_from:
                line, column = other_doc.position(("metadata", "effective"))
                found.append(
                    doc.diagnostic(
                        ("metadata", "effective"),
                        f"effective window {_window(policy)} overlaps policy {other.name!r} {_window(other)} "
                        f"({other_doc.file}:{line}:{column}); each billing period needs exactly one policy",
                    )
                )
    return found


def _window(policy: Policy) -> str:
    return f"[{policy.effective_from}, {policy.effective_until or '...'})"


def _readable(policy_file: str, written: str) -> bool:
    """Is the driver file there, inside the policy's folder? (:meth:`drivers` reports why not.)"""
    try:
        return contained_path(policy_file, written).is_file()
    except InputError:
        return False
