"""The Spark split is ``money.split`` to the last unit, and money survives the unit round trip.

Each Hypothesis example is a batch of cases split in one Spark job (a JVM round trip per
case would take the CI budget), compared case by case with the Python reference.
"""

from __future__ import annotations

from decimal import Context, Decimal, localcontext

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chargeback_engine.engine.spark import split_units, to_money, to_units
from chargeback_engine.engine.store import LINE
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE, split, tie_rotation

UNIT = LEDGER_QUANTUM
#: The largest amount the Spark plane splits exactly: Spark negates (``abs``, unary minus) a
#: decimal through 34-digit arithmetic, so units of 10**-18 stay below 1e34 (amounts below 1e16).
LARGEST = Decimal("9" * (34 - LEDGER_SCALE) + "." + "9" * LEDGER_SCALE)
#: ``money.split`` (the reference) is exact up to DECIMAL(38, 18)'s limit, beyond this one.
REFERENCE_LIMIT = LARGEST
SPECIAL = [
    Decimal(0),
    UNIT,
    -UNIT,
    Decimal("0.01"),
    Decimal("-0.01"),
    Decimal("12345678.999999999999999999"),
    REFERENCE_LIMIT.copy_negate(),
]
amounts = st.one_of(
    st.sampled_from(SPECIAL),
    st.decimals(min_value=-(10**12), max_value=10**12, places=LEDGER_SCALE, allow_nan=False, allow_infinity=False),
)
_WIDE = Context(prec=60)
cases = st.lists(
    st.tuples(amounts, st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40).filter(any)),
    min_size=1,
    max_size=200,
)


def spark_split(spark, batch: list[tuple[Decimal, list[int]]]) -> list[list[Decimal]]:  # type: ignore[no-untyped-def]
    parts = pa.table(
        {
            "decision_id": [f"d{i}" for i in range(len(batch))],
            LINE: list(range(len(batch))),
            "units": pa.array([Decimal(int(a.scaleb(LEDGER_SCALE, _WIDE))) for a, _ in batch], pa.decimal128(38, 0)),
        }
    )
    rows = [
        {"decision_id": f"d{i}", "cost_center": f"C{j:02d}", "weight": Decimal(w), "position": position}
        for i, (_, weights) in enumerate(batch)
        for position, (j, w) in enumerate((j, w) for j, w in enumerate(weights) if w)
    ]  # positions as the kernel numbers them
    shares = spark.createDataFrame(
        pa.Table.from_pylist(
            rows,
            pa.schema(
                [
                    ("decision_id", pa.string()),
                    ("cost_center", pa.string()),
                    ("weight", pa.decimal128(38, 0)),
                    ("position", pa.int32()),
                ]
            ),
        )
    )
    shares = shares.selectExpr(
        "*",
        "CAST(sum(weight) OVER (PARTITION BY decision_id) AS DECIMAL(38,0)) AS total",
        "count(*) OVER (PARTITION BY decision_id) AS n",
    )
    out = split_units(spark.createDataFrame(parts), shares, ["decision_id"])
    got = {
        (r["decision_id"], r["cost_center"]): r["amount"]
        for r in out.selectExpr("decision_id", "cost_center", f"{to_money('units_out')} AS amount").collect()
    }
    return [[got[(f"d{i}", f"C{j:02d}")] for j, w in enumerate(weights) if w] for i, (_, weights) in enumerate(batch)]


@settings(max_examples=4)
@given(batch=cases)
@example(
    batch=[
        (Decimal("0.01"), [1, 1]),
        (UNIT, [1] * 40),
        (-UNIT, [0, 3, 3]),
        (REFERENCE_LIMIT, [1, 2, 3]),
        (REFERENCE_LIMIT.copy_negate(), [7, 10**9]),
        (5 * UNIT, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    ]
)
def test_spark_split_equals_money_split(spark, batch) -> None:  # type: ignore[no-untyped-def]
    results = spark_split(spark, batch)
    for line, ((amount, weights), parts) in enumerate(zip(batch, results, strict=True)):
        kept = [Decimal(w) for w in weights if w]
        assert parts == split(amount, kept, rotation=tie_rotation(line, len(kept))), (amount, weights)
        with localcontext(_WIDE):  # the test's own sum must not round at 28 digits
            assert sum(parts, Decimal(0)) == amount


def test_units_round_trip_is_exact_at_the_limits(spark) -> None:  # type: ignore[no-untyped-def]
    values = [
        Decimal(0),
        UNIT,
        -UNIT,
        Decimal("0.5"),
        Decimal("-0.5"),
        Decimal("1234.567890123456789012"),
        LARGEST,
        LARGEST.copy_negate(),
        Decimal("9223372036854775807.1"),
        Decimal("-9223372036.854775807123456789"),
    ]
    frame = spark.createDataFrame([(str(v),) for v in values], "text string").selectExpr(
        f"CAST(text AS DECIMAL(38,{LEDGER_SCALE})) AS money"
    )
    rows = frame.selectExpr(f"{to_units('money')} AS units", f"{to_money(to_units('money'))} AS back").collect()
    with localcontext() as ctx:
        ctx.prec = 60
        assert [r["units"] for r in rows] == [v.scaleb(LEDGER_SCALE) for v in values]
    assert [r["back"] for r in rows] == values
