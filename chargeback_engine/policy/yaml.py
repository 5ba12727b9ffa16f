"""The hardened YAML reader for policy files, and for every other YAML file the product reads.

Policy files come from pull requests, so the reader treats them as untrusted input. It
walks ruamel.yaml's round-trip *event stream* and builds plain data itself, which keeps
the dangerous parts of YAML out by construction:

- anchors, aliases and merge keys are rejected where they are written, before anything is
  expanded, so an alias bomb costs no more than reading its text;
- files over :data:`MAX_BYTES` and nesting deeper than :data:`MAX_DEPTH` are rejected;
- only the YAML core tags are accepted (``!!str``, ``!!int``, ... ; never
  ``!!python/object/apply``);
- ``.nan`` and ``.inf`` are rejected, and numbers with a fraction become exact
  :class:`~decimal.Decimal` values, never floats;
- an integer written in any but its plain decimal form (``012``, ``0x1F``, ``+5``) is an
  error that tells the author to quote it, so an id ``012`` never silently becomes ``12``;
- dates (``2026-11-01``) and mapping keys stay the text that was written;
- duplicate keys are errors.

Every problem becomes a located :class:`~chargeback_engine.errors.Diagnostic`; the reader
never lets a parser exception escape.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from chargeback_engine.errors import Diagnostic, InputError

#: Largest policy file accepted, in bytes.
MAX_BYTES = 256 * 1024
#: Deepest nesting of mappings and sequences accepted.
MAX_DEPTH = 32

JsonPath = tuple["str | int", ...]
Position = tuple[int, int]  # 1-based line and column

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MERGE = _CORE + "timestamp", _CORE + "merge"
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL}
_COLLECTION_TAGS = {_CORE + "map", _CORE + "seq"}
_NON_FINITE = re.compile(r"^[-+]?\.(inf|nan)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: JsonPath) -> str:
    """``("spec", "rules", 3, "when", "tags.env")`` -> ``$.spec.rules[3].when['tags.env']``."""
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}")
        else:
            escaped = step.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"['{escaped}']")
    return "".join(parts)


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, str, int, Decimal, bool, None) plus where each value was written."""

    file: str
    data: Any
    values: dict[JsonPath, Position] = field(default_factory=dict)
    keys: dict[JsonPath, Position] = field(default_factory=dict)
    texts: dict[JsonPath, str] = field(default_factory=dict)  # source text of non-string scalars

    def position(self, path: JsonPath, *, key: bool = False) -> Position:
        """Where ``path`` was written; a path that does not exist falls back to its nearest parent."""
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def diagnostic(self, path: JsonPath, message: str, *, severity: str = "error", key: bool = False) -> Diagnostic:
        line, column = self.position(path, key=key)
        return Diagnostic(self.file, line, column, format_path(path), message, severity)  # type: ignore[arg-type]  # a plugin's Finding.severity is a plain str

    def error(self, path: JsonPath, message: str, *, key: bool = False) -> YamlFileError:
        """The error for a value that is read but not valid, located where it was written."""
        return YamlFileError([self.diagnostic(path, message, key=key)])


class _Fatal(Exception):
    """Stop reading: what follows cannot be trusted (or must not be expanded)."""


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.doc = YamlDocument(file, None)
        self.diagnostics: list[Diagnostic] = []
        self.fatal = False
        self._resolver = YAML(typ="rt").resolver

    def error(self, position: Position, path: JsonPath, message: str, *, fatal: bool = False) -> None:
        self.diagnostics.append(Diagnostic(self.file, *position, format_path(path), message))
        if fatal:
            self.fatal = True

    def read(self, events: Iterator[Event]) -> None:
        documents = 0
        for event in events:
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    self.error(_pos(event), (), "a policy file holds exactly one YAML document", fatal=True)
                    return
                self.doc.data = self.node(next(events), events, (), 1)
            elif isinstance(event, StreamEndEvent):
                break
        if documents == 0:
            self.error((1, 1), (), "the file is empty; expected a policy document", fatal=True)

    def node(self, event: Event, events: Iterator[Event], path: JsonPath, depth: int) -> Any:
        self.doc.values[path] = _pos(event)
        if isinstance(event, AliasEvent):
            message = f"aliases (*{event.anchor}) are not allowed in policy files; write the value out"
            self.error(_pos(event), path, message, fatal=True)
            return None
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            message = f"anchors (&{anchor}) are not allowed in policy files; write the value out"
            self.error(_pos(event), path, message, fatal=True)
        if isinstance(event, CollectionStartEvent):
            if depth > MAX_DEPTH:
                self.error(_pos(event), path, f"nesting deeper than {MAX_DEPTH} levels is not allowed", fatal=True)
                raise _Fatal
            if event.tag is not None and event.tag not in _COLLECTION_TAGS:
                self.error(_pos(event), path, _tag_message(event.tag), fatal=True)
            if isinstance(event, MappingStartEvent):
                return self.mapping(events, path, depth)
            return self.sequence(events, path, depth)
        assert isinstance(event, ScalarEvent)
        return self.scalar(event, path)

    def mapping(self, events: Iterator[Event], path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for event in events:
            if isinstance(event, MappingEndEvent):
                return result
            if not isinstance(event, ScalarEvent):
                self.error(_pos(event), path, "mapping keys must be plain text, not collections or aliases", fatal=True)
                raise _Fatal
            key = event.value
            child = (*path, key)
            if event.anchor is not None:
                self.error(_pos(event), child, f"anchors (&{event.anchor}) are not allowed in policy files", fatal=True)
            if event.tag is not None and event.tag != _STR:
                self.error(_pos(event), child, f"the tag {_short(event.tag)} is not allowed on a key", fatal=True)
            if event.style is None and self._resolve(event) == _MERGE:
                message = "merge keys (<<) are not allowed in policy files; write the fields out"
                self.error(_pos(event), child, message, fatal=True)
            if key in result:
                first = self.doc.keys[child]
                message = f"duplicate key {key!r} (first written at line {first[0]}, column {first[1]})"
                self.error(_pos(event), child, message)
                self.skip(next(events), events)
                continue
            self.doc.keys[child] = _pos(event)
            result[key] = self.node(next(events), events, child, depth + 1)
        raise _Fatal  # the stream ended inside a mapping

    def sequence(self, events: Iterator[Event], path: JsonPath, depth: int) -> list[Any]:
        result: list[Any] = []
        for event in events:
            if isinstance(event, SequenceEndEvent):
                return result
            result.append(self.node(event, events, (*path, len(result)), depth + 1))
        raise _Fatal

    def skip(self, event: Event, events: Iterator[Event]) -> None:
        """Step over the value of a duplicate key without building (or expanding) it."""
        open_collections = int(isinstance(event, CollectionStartEvent))
        while open_collections:
            event = next(events)
            if isinstance(event, CollectionStartEvent):
                open_collections += 1
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                open_collections -= 1

    def _resolve(self, event: ScalarEvent) -> str:
        tag: str = self._resolver.resolve(ScalarNode, event.value, event.implicit)
        return tag

    def scalar(self, event: ScalarEvent, path: JsonPath) -> Any:
        text, position = event.value, _pos(event)
        if event.tag is not None and event.tag not in _SCALAR_TAGS:
            self.error(position, path, _tag_message(event.tag), fatal=True)
            return None
        if event.tag == _STR or (event.tag is None and event.style is not None):
            return text
        tag = self._resolver.resolve(ScalarNode, text, (True, False))
        if event.tag is not None and event.tag != tag:
            self.error(position, path, f"{text!r} is not a valid {_short(event.tag)}")
            return None
        if tag in (_STR, _TIMESTAMP):
            return text  # dates stay text; the schema checks their format
        self.doc.texts[path] = text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            return self.integer(text, position, path)
        return self.decimal(text, position, path)

    def integer(self, text: str, position: Position, path: JsonPath) -> int | None:
        digits = text.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        body = digits.lstrip("+-")
        base = {"0x": 16, "0o": 8, "0b": 2}.get(body[:2].lower(), 10)
        try:
            value = sign * int(body[2:] if base != 10 else body, base)
        except ValueError:
            self.error(position, path, f"{text!r} is not a number; quote it if it is text")
            return None
        if str(value) != text:
            message = f'{text} would be read as the number {value}; quote it ("{text}") if it is text, or write {value}'
            self.error(position, path, message)
        return value

    def decimal(self, text: str, position: Position, path: JsonPath) -> Decimal | None:
        if _NON_FINITE.match(text):
            self.error(position, path, f"{text} is not a finite number; policies allow only finite numbers")
            return None
        try:
            return Decimal(text.replace("_", ""))
        except InvalidOperation:
            self.error(position, path, f"{text!r} is not a number; quote it if it is text")
            return None


def _pos(event: Event) -> Position:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1)


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _tag_message(tag: str) -> str:
    return f"the tag {_short(tag)} is not allowed; only YAML core tags are"


def read_yaml_text(text: str, file: str) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Read one policy document. Returns ``None`` as the document when it cannot be trusted."""
    reader = _Reader(file)
    try:
        reader.read(iter(YAML(typ="rt").parse(io.StringIO(text))))
    except _Fatal:
        reader.fatal = True
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        reader.error(position, (), f"YAML syntax error: {problem}", fatal=True)
    except ReaderError as exc:  # a character YAML does not allow, located by its offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        reader.error((line, column), (), f"YAML syntax error: unacceptable character #x{code:04x}", fatal=True)
    except (YAMLError, RecursionError, ValueError) as exc:
        reader.error((1, 1), (), f"YAML syntax error: {exc}", fatal=True)
    if reader.fatal and not reader.diagnostics:
        reader.error((1, 1), (), "the YAML document ended unexpectedly")
    reader.diagnostics.sort()
    if reader.fatal:
        return None, reader.diagnostics
    return reader.doc, reader.diagnostics


class YamlFileError(InputError):
    """A YAML file (other than a policy) that the hardened reader refused; carries its diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


def load_yaml_document(path: str | Path) -> YamlDocument:
    """Any YAML file the product reads (policy tests, finance settings, notifier configs),
    through the same hardened reader as policies: they are as untrusted. The document keeps
    where each value was written, so a reader's own checks name ``file:line:col`` too
    (:meth:`YamlDocument.error`)."""
    document, found = read_yaml_file(Path(path))
    errors = [d for d in found if d.severity == "error"]
    if document is None or errors:
        raise YamlFileError(errors or found)
    return document


def read_yaml_file(path: Path) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Read a policy file, refusing oversized and non-UTF-8 files before parsing them."""
    file = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return None, [Diagnostic(file, 1, 1, "$", f"cannot read the file: {exc.strerror or exc}")]
    if len(raw) > MAX_BYTES:
        message = f"the file is larger than {MAX_BYTES // 1024} KiB; policy files must be smaller"
        return None, [Diagnostic(file, 1, 1, "$", message)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [Diagnostic(file, line, column, "$", "the file is not valid UTF-8 text")]
    return read_yaml_text(text.removeprefix("\ufeff"), file)
