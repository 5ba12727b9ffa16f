"""Tags parsed once, at load, into one column per key the policy reads.

A month of 1M lines holds a few tens of thousands of distinct ``Tags`` texts. Each is
parsed and normalised once (:class:`~chargeback_engine.policy.match.TagNormalizer`), and
every line then gets its tag values by position, as dictionary-encoded columns: nothing
downstream parses, compares or joins on raw JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.canonical import key_json
from chargeback_engine.errors import InputError
from chargeback_engine.policy.match import TAG_PREFIX, TagCollision, TagNormalizer

TAGS = "Tags"
#: The field that stands for every normalised tag at once, as canonical JSON (for an
#: allocator whose ``fields`` asks for ``tags.*``).
ALL_TAGS = TAG_PREFIX + "*"


@dataclass(frozen=True)
class TagColumns:
    """Where each tag field of the match key lives in the plane: ``tags.<key>`` -> a
    column name that is safe in every SQL dialect."""

    columns: Mapping[str, str]

    @classmethod
    def for_fields(cls, fields: Collection[str]) -> TagColumns:
        return cls({field: f"_tag_{i}" for i, field in enumerate(sorted(fields))})


def with_tag_columns(records: pa.Table, tags: TagNormalizer, layout: TagColumns) -> pa.Table:
    """``records`` plus one dictionary-encoded column per tag field of ``layout``: the
    normalised value, null when the tag is absent or empty."""
    if not layout.columns:
        return records
    column = records[TAGS]
    encoded = (column if pa.types.is_dictionary(column.type) else column.dictionary_encode()).combine_chunks()
    texts = encoded.dictionary.to_pylist()
    keys = {field[len(TAG_PREFIX) :]: name for field, name in layout.columns.items()}
    values: dict[str, list[str | None]] = {name: [] for name in layout.columns.values()}
    for position, text in enumerate(texts):
        normalised = _parse(text, tags, records, encoded.indices, position)
        every = key_json(normalised) if "*" in keys and normalised else None  # the whole tag set
        for key, name in keys.items():
            values[name].append(every if key == "*" else normalised.get(key))
    for name, per_text in values.items():
        dictionary = pa.array(per_text, pa.string()).dictionary_encode()
        # Each line's value by its Tags text's position: a gather, never a Python object per line.
        lines = pc.take(dictionary.indices, encoded.indices).cast(pa.int32())
        records = records.append_column(name, pa.DictionaryArray.from_arrays(lines, dictionary.dictionary))
    return records


def _parse(
    text: str | None, tags: TagNormalizer, records: pa.Table, text_of_line: pa.Array, position: int
) -> dict[str, str]:
    """One distinct ``Tags`` text, normalised; a bad one names the first line that holds it."""
    if not text:
        return {}
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise TypeError("is not a JSON object")
        return tags.normalize(value)
    except (ValueError, TypeError, RecursionError, TagCollision) as exc:
        line = pc.index(text_of_line, position).as_py()
        where = f"{records['x_SourceId'][line].as_py()}: row {records['x_SourceRow'][line].as_py()}"
        excerpt = json.dumps(text[:60]) + ("…" if len(text) > 60 else "")
        if isinstance(exc, RecursionError):
            reason = "is nested too deeply"
        elif isinstance(exc, json.JSONDecodeError):
            reason = f"is not JSON: {exc.msg} at character {exc.pos}"
        elif isinstance(exc, TagCollision):
            reason = f": {exc}"
        else:
            reason = str(exc)
        raise InputError(f"{where}: column Tags: {excerpt} {reason}".replace(" : ", ": ")) from None
