"""The match language: conditions over FOCUS columns and normalised tags.

A rule's ``when:`` is a mapping of field to matcher, all of which must hold. A field is a
FOCUS column name (``ServiceName``) or ``tags.<key>`` after normalisation. ``all``, ``any``
and ``not`` combine sub-conditions. Matchers: a plain value (equals), ``{in: [...]}``,
``{not_in: [...]}``, ``{exists: bool}``, ``{regex: "..."}`` (full match).

Regular expressions run under RE2 (the ``google-re2`` binding), whose matching time is
linear in the text: policies arrive through pull requests, and a backtracking engine lets
``(a+)+$`` hang a run on one crafted tag value. Patterns that only backtracking can run
(backreferences, lookaround) are refused when the policy is validated.

Missing values: a tag that is absent, or whose value is empty after normalisation, is
*missing*. A missing value equals nothing, is in no list, matches no regex; it satisfies
``not_in`` and ``exists: false``. Null FOCUS columns behave the same way.

Conditions are evaluated once per distinct *match key* (the tuple of fields any rule
reads), never per line item.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import re2

from chargeback_engine.errors import InputError

MatchKey = Mapping[str, "str | None"]

TAG_PREFIX = "tags."


class Condition:
    """A compiled predicate over a match key."""

    @property
    def fields(self) -> frozenset[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def matches(self, key: MatchKey) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class _Field(Condition):
    name: str
    op: Literal["eq", "in", "not_in", "exists", "regex"]
    operand: Any

    @property
    def fields(self) -> frozenset[str]:
        return frozenset({self.name})

    def matches(self, key: MatchKey) -> bool:
        value = key.get(self.name)
        if self.op == "exists":
            return (value is not None) is self.operand
        if self.op == "not_in":
            return value is None or value not in self.operand
        if value is None:
            return False
        if self.op == "eq":
            return bool(value == self.operand)
        if self.op == "in":
            return value in self.operand
        return self.operand.fullmatch(value) is not None


@dataclass(frozen=True)
class _All(Condition):
    parts: tuple[Condition, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset().union(*(p.fields for p in self.parts))

    def matches(self, key: MatchKey) -> bool:
        return all(p.matches(key) for p in self.parts)


@dataclass(frozen=True)
class _Any(Condition):
    parts: tuple[Condition, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset().union(*(p.fields for p in self.parts))

    def matches(self, key: MatchKey) -> bool:
        return any(p.matches(key) for p in self.parts)


@dataclass(frozen=True)
class _Not(Condition):
    part: Condition

    @property
    def fields(self) -> frozenset[str]:
        return self.part.fields

    def matches(self, key: MatchKey) -> bool:
        return not self.part.matches(key)


def _scalar(value: Any) -> str:
    """Policy values compare as strings, as FOCUS and tag values are strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_condition(when: Mapping[str, Any] | None, tags: TagNormalizer | None = None) -> Condition:
    """Compile a validated ``when:`` document. Tag keys in it are normalised like the data's."""
    tags = tags or TagNormalizer()
    parts: list[Condition] = []
    for name, spec in (when or {}).items():
        if name == "all":
            parts.append(_All(tuple(compile_condition(c, tags) for c in spec)))
        elif name == "any":
            parts.append(_Any(tuple(compile_condition(c, tags) for c in spec)))
        elif name == "not":
            parts.append(_Not(compile_condition(spec, tags)))
        else:
            field_name = name
            if name.startswith(TAG_PREFIX):
                field_name = TAG_PREFIX + tags.normalize_key(name[len(TAG_PREFIX) :])
            parts.append(_compile_matcher(field_name, spec, tags))
    return _All(tuple(parts))


def _compile_matcher(name: str, spec: Any, tags: TagNormalizer) -> Condition:
    is_tag = name.startswith(TAG_PREFIX)

    def value(v: Any) -> str:
        return tags.normalize_value(_scalar(v)) if is_tag else _scalar(v)

    if not isinstance(spec, Mapping):
        return _Field(name, "eq", value(spec))
    ((op, operand),) = spec.items()
    if op == "equals":
        return _Field(name, "eq", value(operand))
    if op in ("in", "not_in"):
        return _Field(name, op, frozenset(value(v) for v in operand))
    if op == "exists":
        return _Field(name, "exists", bool(operand))
    if op == "regex":
        return _Field(name, "regex", compile_regex(operand))
    raise ValueError(f"unknown matcher {op!r}")


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr


def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2; ``ValueError`` saying why if RE2 cannot run it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if isinstance(exc.args[0], bytes) else str(exc)
    try:
        re.compile(pattern)
    except re.error:
        raise ValueError(f"is not a valid regular expression ({reason})") from None
    raise ValueError(
        f"needs a backtracking regex engine ({reason}); regular expressions run under RE2 "
        "so that matching time stays linear: rewrite it without backreferences or lookaround"
    ) from None


@dataclass(frozen=True)
class TagNormalizer:
    """Turns provider tags into the canonical tags rules match on.

    Keys: Unicode NFC, optional ``strip``, then ``keys`` case (``lower`` or ``preserve``),
    then ``aliases`` (normalised source key -> canonical key). Values: NFC and ``strip``.
    When two source keys land on the same canonical key, ``on_collision`` decides:
    ``prefer-exact`` keeps the source key that was already canonical, else the smallest
    source key in code-point order; ``error`` reports the record as invalid.
    """

    keys: Literal["lower", "preserve"] = "lower"
    strip: bool = True
    aliases: Mapping[str, str] = field(default_factory=dict)
    on_collision: Literal["prefer-exact", "error"] = "prefer-exact"
    _keys: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)  # normalised keys

    def normalize_key(self, key: str) -> str:
        known = self._keys.get(key)  # a month holds a handful of distinct keys, in every record
        if known is None:
            known = self._keys[key] = self._normalized_key(key)
        return known

    def _normalized_key(self, key: str) -> str:
        key = unicodedata.normalize("NFC", key)
        if self.strip:
            key = key.strip()
        if self.keys == "lower":
            key = key.lower()
        return self.aliases.get(key, key)

    def normalize_value(self, value: str) -> str:
        if not value.isascii():  # ASCII text is already in NFC
            value = unicodedata.normalize("NFC", value)
        return value.strip() if self.strip else value

    def normalize(self, tags: Mapping[str, Any]) -> dict[str, str]:
        """Normalise one record's tags. Raises ``TagCollision`` under ``on_collision: error``."""
        chosen: dict[str, tuple[int, str, str]] = {}
        for source_key, raw in tags.items():
            if raw is None:
                continue
            value = self.normalize_value(_scalar(raw))
            if value == "":
                continue
            key = self.normalize_key(source_key)
            rank = (0 if source_key == key else 1, source_key)
            if key in chosen:
                if self.on_collision == "error":
                    raise TagCollision(key, sorted([chosen[key][1], source_key]))
                if rank >= chosen[key][:2]:
                    continue
            chosen[key] = (*rank, value)
        return {k: v for k, (_, _, v) in sorted(chosen.items())}


def covers(broader: Condition, narrower: Condition) -> bool:
    """True if every key that satisfies ``narrower`` also satisfies ``broader``.

    Sound, not complete: ``broader`` must be a conjunction of field matchers (an empty
    ``when`` covers everything), and each of them must be implied by a matcher that
    ``narrower`` places on the same field. ``any``/``not`` in ``broader`` make the answer
    False; in ``narrower`` they only narrow it further and are ignored. Used to warn about
    rules that a higher-priority rule shadows.
    """
    required = _conjuncts(broader)
    if required is None:
        return False
    given = _conjuncts(narrower, strict=False) or []
    return all(any(_implies(g, r) for g in given if g.name == r.name) for r in required)


def _conjuncts(condition: Condition, *, strict: bool = True) -> list[_Field] | None:
    if isinstance(condition, _Field):
        return [condition]
    if isinstance(condition, _All):
        fields: list[_Field] = []
        for part in condition.parts:
            sub = _conjuncts(part, strict=strict)
            if sub is None:
                return None
            fields.extend(sub)
        return fields
    return None if strict else []


def _implies(given: _Field, required: _Field) -> bool:
    """Does ``given`` (on the same field) imply ``required``? Missing values count."""
    op, operand = required.op, required.operand
    if given.op in ("eq", "in"):
        values = {given.operand} if given.op == "eq" else set(given.operand)
        if op == "exists":
            return operand is True
        if op == "eq":
            return values == {operand}
        if op == "in":
            return bool(values <= operand)
        if op == "not_in":
            return not (values & operand)
        return all(operand.fullmatch(v) for v in values)
    if given.op == "not_in":
        return op == "not_in" and operand <= given.operand
    if given.op == "exists":
        if given.operand:
            return op == "exists" and operand is True
        return (op == "exists" and operand is False) or op == "not_in"
    # regex: the same pattern, or anything a match implies (the value exists)
    return (op == "regex" and operand.pattern == given.operand.pattern) or (op == "exists" and operand is True)


class TagCollision(InputError, ValueError):
    def __init__(self, key: str, sources: Iterable[str]):
        self.key = key
        self.sources = list(sources)
        super().__init__(f"tag keys {', '.join(map(repr, self.sources))} all normalise to {key!r}")
