"""The FOCUS cost table: the one shape every collector produces and the engine consumes.

Column names follow the FinOps Open Cost and Usage Specification (FOCUS 1.0-1.2).
Money columns are exact ``decimal128(38, LEDGER_SCALE)`` (18 digits after the point);
text columns are ``string``, or the same values dictionary-encoded (:data:`ENCODED_TEXT`);
``Tags`` holds a JSON object whose values are strings, keys as the provider wrote them
(:func:`chargeback_engine.normalise.canonical_tags`; normalising keys is the policy's job).
Two ``x_`` columns carry provenance so every ledger row can point at its source line.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chargeback_engine.money import LEDGER_SCALE

MONEY = pa.decimal128(38, LEDGER_SCALE)
QUANTITY = pa.decimal128(38, LEDGER_SCALE)
TIMESTAMP = pa.timestamp("us", tz="UTC")

#: FOCUS columns that hold money.
MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")

#: Columns a collector must fill on every row.
REQUIRED_COLUMNS = ("BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd")

COST_TABLE_SCHEMA = pa.schema(
    [
        pa.field("BilledCost", MONEY),
        pa.field("EffectiveCost", MONEY),
        pa.field("ListCost", MONEY),
        pa.field("ContractedCost", MONEY),
        pa.field("BillingCurrency", pa.string()),
        pa.field("BillingAccountId", pa.string()),
        pa.field("BillingAccountName", pa.string()),
        pa.field("BillingPeriodStart", TIMESTAMP),
        pa.field("BillingPeriodEnd", TIMESTAMP),
        pa.field("ChargePeriodStart", TIMESTAMP),
        pa.field("ChargePeriodEnd", TIMESTAMP),
        pa.field("ChargeCategory", pa.string()),
        pa.field("ChargeClass", pa.string()),
        pa.field("ChargeFrequency", pa.string()),
        pa.field("ChargeDescription", pa.string()),
        pa.field("CommitmentDiscountId", pa.string()),
        pa.field("CommitmentDiscountType", pa.string()),
        pa.field("ConsumedQuantity", QUANTITY),
        pa.field("ConsumedUnit", pa.string()),
        pa.field("PricingQuantity", QUANTITY),
        pa.field("PricingUnit", pa.string()),
        pa.field("ProviderName", pa.string()),
        pa.field("PublisherName", pa.string()),
        pa.field("InvoiceIssuerName", pa.string()),
        pa.field("RegionId", pa.string()),
        pa.field("RegionName", pa.string()),
        pa.field("ResourceId", pa.string()),
        pa.field("ResourceName", pa.string()),
        pa.field("ResourceType", pa.string()),
        pa.field("ServiceCategory", pa.string()),
        pa.field("ServiceName", pa.string()),
        pa.field("SkuId", pa.string()),
        pa.field("SubAccountId", pa.string()),
        pa.field("SubAccountName", pa.string()),
        pa.field("Tags", pa.string()),
        pa.field("x_SourceId", pa.string()),
        pa.field("x_SourceRow", pa.int64()),
    ]
)

#: Every FOCUS column a rule may match on (provenance columns excluded).
FOCUS_COLUMNS = tuple(n for n in COST_TABLE_SCHEMA.names if not n.startswith("x_"))


#: How a text column may also be held: dictionary-encoded, as Parquet readers can deliver
#: it. A month has far fewer distinct values than lines, so this takes a fraction of the
#: memory of plain ``string``, and the values are the same.
ENCODED_TEXT = pa.dictionary(pa.int32(), pa.string())


def conform(table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the cost-table columns, in order, absent ones as nulls.

    Unknown columns are dropped; a column of the wrong type is cast (and a cast that would
    lose money raises, because pyarrow's safe casts refuse to truncate decimals). A text
    column that arrives dictionary-encoded stays so, as :data:`ENCODED_TEXT`.
    """
    columns = []
    absent: dict[pa.DataType, pa.Array] = {}  # one null array per type, shared: zeroing 25 of them took 0.3 s at 1M
    for field in COST_TABLE_SCHEMA:
        if field.name not in table.column_names:
            kind = ENCODED_TEXT if pa.types.is_string(field.type) else field.type
            if kind not in absent:
                absent[kind] = _nulls(table.num_rows, kind)
            columns.append(absent[kind])
            continue
        column = table[field.name]
        encoded = pa.types.is_dictionary(column.type) and pa.types.is_string(field.type)
        try:
            columns.append(column.cast(ENCODED_TEXT if encoded else field.type))
        except pa.ArrowException as exc:  # name the column: pyarrow's message does not
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise type(exc)(f"column {field.name} ({column.type}) cannot be read as {field.type}: {reason}") from exc
    return pa.Table.from_arrays(
        columns, schema=pa.schema([f.with_type(c.type) for f, c in zip(COST_TABLE_SCHEMA, columns, strict=True)])
    )


def _nulls(rows: int, kind: pa.DataType) -> pa.Array:
    """``rows`` nulls of ``kind``; text as :data:`ENCODED_TEXT` over an empty dictionary, so
    the data plane never encodes it again."""
    if kind == ENCODED_TEXT:
        return pa.DictionaryArray.from_arrays(pa.nulls(rows, pa.int32()), pa.array([], pa.string()))
    return pa.nulls(rows, kind)


def read_parquet_columns(path: str | Path, columns: Mapping[str, str], dictionary: Collection[str]) -> pa.Table:
    """The file's ``columns`` (its name -> the name wanted), each read on its own into one
    chunk, those named in ``dictionary`` dictionary-encoded with their row groups'
    dictionaries unified. The engine holds line items one chunk per column; combining a
    table read whole would copy it while the chunks it came from are still held."""

    def read(name: str) -> pa.Array:  # the file is opened per column: its reader keeps what it read
        column = pq.ParquetFile(path, read_dictionary=[name] if name in dictionary else None).read(columns=[name])
        return column.column(0).combine_chunks()

    # Two columns at a time: a reader decodes one column on one core, and releases the GIL.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="chargeback-parquet") as pool:
        read_columns = list(pool.map(read, columns))
    return pa.table(dict(zip(columns.values(), read_columns, strict=True)))


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary-encoded text read as plain ``string``: what a cost table's
    schema must equal, however its text is held."""
    return pa.schema([f.with_type(pa.string()) if f.type == ENCODED_TEXT else f for f in schema])


def encoded(table: pa.Table) -> pa.Table:
    """``table`` with every text column dictionary-encoded (:data:`ENCODED_TEXT`), so
    tables whose text is held differently can be concatenated without decoding any."""
    schema = pa.schema([f.with_type(ENCODED_TEXT) if pa.types.is_string(f.type) else f for f in table.schema])
    return table if schema.equals(table.schema) else table.cast(schema)


def plain(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded text decoded: exactly :data:`COST_TABLE_SCHEMA`."""
    return table if table.schema.equals(COST_TABLE_SCHEMA) else table.cast(COST_TABLE_SCHEMA)


def empty_cost_table() -> pa.Table:
    return COST_TABLE_SCHEMA.empty_table()
