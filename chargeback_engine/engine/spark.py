"""The Spark data plane: the same decisions, applied to line items on a Spark cluster.

The kernel still resolves on the driver, once per distinct match key; Spark only joins the
(broadcast) decisions onto the line items and splits them, exactly as the DuckDB plane does.
Neither the line items nor the ledger pass through the driver's JVM: the loaded Arrow table
is written to Parquet and read by the executors, and :meth:`SparkPlane.finish` has them
write the narrow ledger as Parquet, which the run's
:class:`~chargeback_engine.engine.store.SortedLedgerStore` sorts and widens with DuckDB,
exactly as it does for the DuckDB plane.

Amounts become integer units of 10**-LEDGER_SCALE as ``DECIMAL(38, 0)`` for the split. Spark types the
result of every decimal operation, and with its default ``allowPrecisionLoss`` a product
or quotient that could need more than 38 digits keeps only 6 after the point. So every
operation below is chosen to be exact: remainders are exact, products of integers stay
integers, ``(x - x % y) / y`` is an exact integer quotient (found in two parts, :func:`_idiv`), and money is
converted to and from units through its integer and fractional parts, never ``x * 10**S``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from functools import partial, reduce
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chargeback_engine.engine import store
from chargeback_engine.engine.dataplane import (
    NUMBERED_DECISION_SCHEMA,
    RunInfo,
    number_decisions,
)
from chargeback_engine.engine.store import (
    LINE,
    RunStore,
    SortedLedgerStore,
    encoded_lines,
)
from chargeback_engine.errors import InputError
from chargeback_engine.focus import MONEY, read_parquet_columns
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.money import LEDGER_SCALE, tie_order
from chargeback_engine.sql_common import Dialect, connect, sql_name, sql_text

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: The master a plane uses when none is given and no Spark session is active.
DEFAULT_MASTER = "local[2]"
#: Settings for a session this package starts (a cluster's own session is left as it is).
SESSION_CONF = {
    "spark.app.name": "chargeback-engine",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
#: Per-run SQL settings: periods and month boundaries are UTC, as in the DuckDB plane.
RUN_CONF = {"spark.sql.session.timeZone": "UTC"}
#: Memory the store's DuckDB may take on the driver's host before it spills into the run's
#: directory: the host also runs Spark's driver JVM (DuckDB's default is 80% of the RAM).
STORE_MEMORY_LIMIT = "25%"
#: Row groups of the loaded lines' Parquet file: small enough that every core gets a share
#: of the scan (Spark splits files at row-group boundaries).
ROW_GROUP_ROWS = 65_536

_INT = "DECIMAL(38,0)"
_MONEY = f"DECIMAL(38,{LEDGER_SCALE})"
_UNIT = 10**LEDGER_SCALE
#: The narrow ledger Spark computes: the store adds the line's and the decision's columns.
_LEDGER_ROWS = (LINE, "period", "cost_center", "amount", "stage", "decision")


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The active Spark session, or a new one on ``master`` (``local[2]`` when not given).

    On a cluster (``spark-submit``, Databricks, EMR) the session already exists and is
    returned untouched; ``master`` only matters when this process starts Spark itself.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.master(master or DEFAULT_MASTER)
    for key, value in {**SESSION_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _sql(text: str) -> Column:
    from pyspark.sql import functions as F

    return F.expr(text)


def to_units(money: str) -> str:
    """SQL: a ``DECIMAL(38, S)`` amount as exact integer units of 10**-S (``DECIMAL(38, 0)``).

    ``money % 1`` is exact (type ``DECIMAL(S+1, S)``), and so is the integer part; each
    product below is an integer, which Spark's precision adjustment keeps exact.
    """
    return (
        f"(CAST(CAST(({money}) - ({money}) % 1 AS DECIMAL({38 - LEDGER_SCALE},0)) AS {_INT}) * CAST({_UNIT} AS {_INT})"
        f" + CAST((({money}) % 1) * CAST({_UNIT} AS DECIMAL({LEDGER_SCALE + 1},0)) AS {_INT}))"
    )


def to_money(units: str) -> str:
    """SQL: integer units of 10**-S back to a ``DECIMAL(38, S)`` amount, exactly.

    Spark types ``whole + fraction`` as DECIMAL(39, S), which it adjusts to fewer digits
    after the point; so the amount is spelled as text, sign, whole part and the fraction's
    S digits, and that text is cast, which is exact.
    """
    magnitude = f"abs(CAST({units} AS {_INT}))"
    whole = _idiv(magnitude, f"CAST({_UNIT} AS {_INT})")
    fraction = f"CAST({magnitude} % CAST({_UNIT} AS {_INT}) AS DECIMAL({LEDGER_SCALE},0))"
    return (
        f"CAST(concat(CASE WHEN ({units}) < 0 THEN '-' ELSE '' END, CAST({whole} AS STRING), '.', "
        f"lpad(CAST({fraction} AS STRING), {LEDGER_SCALE}, '0')) AS {_MONEY})"
    )


def _idiv(x: str, y: str) -> str:
    """SQL: ``x // y`` for non-negative integer decimals below 1e38 (``y`` below 1e32), exact.

    Spark types every decimal quotient with 6 digits after the point, so 32 at most before
    it; units of 10**-18 reach 1e38. So the quotient is found in two parts, each below 1e32:
    ``x // (y * 1e6)`` and what is left of ``x`` divided by ``y`` (below 1e6)."""
    exact = f"(({x}) - ({x}) % ({y}))"
    block = f"CAST(({y}) * 1000000 AS {_INT})"
    high = f"CAST(({exact} - {exact} % {block}) / {block} AS {_INT})"
    low = f"CAST(({exact} % {block}) / ({y}) AS {_INT})"
    return f"CAST({high} * 1000000 + {low} AS {_INT})"


def split_units(parts: DataFrame, splits: DataFrame, partition: Sequence[str]) -> DataFrame:
    """Largest-remainder split of ``parts.units`` by the ``splits`` weights, as ``money.split``.

    ``parts`` has ``decision_id`` and ``units``; ``splits`` has ``decision_id``,
    ``cost_center``, ``weight``, ``position``, ``total`` (Σ weight) and ``n`` (shares) plus
    descriptive columns. The result drops ``units`` and adds the split's columns and
    ``units_out``. Floors truncate toward zero on |units|; the leftover units go to the
    largest remainders, ties rotated by the line (:func:`~chargeback_engine.money.tie_order`);
    negative amounts are mirrored.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    joined = parts.join(F.broadcast(splits), "decision_id")
    single = joined.where("n = 1").withColumn("units_out", F.col("units"))
    a, w, total = "abs(units)", "weight", "total"
    many = (
        joined.where("n > 1")
        .withColumn("a", _sql(f"CAST({a} AS {_INT})"))
        .withColumn("r", _sql(f"a % {total}"))
        .withColumn(
            "fl", _sql(f"CAST({_idiv('a', total)} * {w} AS {_INT}) + {_idiv(f'CAST(r * {w} AS {_INT})', total)}")
        )
        .withColumn("rem", _sql(f"CAST(r * {w} AS {_INT}) % {total}"))
    )
    window = Window.partitionBy(*partition)
    many = (
        many.withColumn("lo", F.col("a") - F.sum("fl").over(window))
        .withColumn(
            "rnk",
            F.row_number().over(
                window.orderBy(F.col("rem").desc(), _sql(tie_order("position", sql_name(LINE, "spark"), "n")))
            ),
        )
        .withColumn(
            "units_out",
            _sql(
                f"CAST(CASE WHEN units < 0 THEN -1 ELSE 1 END * (fl + CASE WHEN rnk <= lo THEN 1 ELSE 0 END) AS {_INT})"
            ),
        )
        .drop("a", "r", "fl", "rem", "lo", "rnk")
    )
    return single.unionByName(many).drop("units", "weight", "position", "total", "n", "months")


def _as_text(column: str, dtype: object, qualifier: str = "") -> Column:
    """A source column as the text DuckDB's ``CAST(... AS VARCHAR)`` gives, so keys agree."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    name = qualifier + sql_name(column, "spark")
    if isinstance(dtype, TimestampType):
        return F.concat(_sql(f"CAST({name} AS STRING)"), F.lit("+00")).alias(column)
    return _sql(f"CAST({name} AS STRING)").alias(column)


def _checkpoint(frame: DataFrame) -> DataFrame:
    """Compute ``frame`` now and keep it on the executors, cutting its lineage.

    Later steps read it without recomputing, and their query plans stay small: a run's plan
    would otherwise grow with every stage (and Spark re-analyses it on each action).
    """
    return frame.localCheckpoint(eager=True)


class SparkPlane:
    """:class:`~chargeback_engine.engine.dataplane.DataPlane` on Apache Spark.

    ``spark`` is an existing session (a cluster's); otherwise one is started on ``master``.
    Each run works in a fresh directory under ``workdir`` (the system's temporary directory
    by default): on a cluster it must be a path the driver and every executor see alike
    (a shared mount such as ``/dbfs/...``). Closing the plane releases its data but never
    stops the session.
    """

    def __init__(self, spark: SparkSession | None = None, master: str | None = None, workdir: str | Path | None = None):
        self._spark = spark or spark_session(master)
        for key, value in RUN_CONF.items():
            self._spark.conf.set(key, value)
        self._workdir = workdir
        self._run: RunInfo | None = None
        self._dir: Path | None = None  # the run's files, until a store owns them
        self._src: DataFrame | None = None
        self._pieces: list[DataFrame] = []  # checkpointed ledger pieces, in the order written
        self._decisions: list[pa.Table] = []  # NUMBERED_DECISION_SCHEMA, numbered as the DuckDB plane does

    @property
    def spark(self) -> SparkSession:
        return self._spark

    # -- loading ---------------------------------------------------------------------
    def load(self, records: pa.Table, run: RunInfo) -> int:
        """Write the lines to Parquet with their position, for the executors to read.

        ``_line`` is stored, not derived from the read order, so it is the Arrow row index
        however Spark splits the file.
        """
        missing = records.filter(pc.is_null(records[run.cost_column])).slice(0, 1).to_pylist()
        if missing:
            raise InputError(
                f"{missing[0]['x_SourceId']}: row {missing[0]['x_SourceRow']}: column {run.cost_column} is empty"
            )
        self.close()
        self._run = run
        self._dir = Path(tempfile.mkdtemp(prefix="chargeback-spark-", dir=self._workdir))
        pq.write_table(
            records.append_column(LINE, pa.array(np.arange(records.num_rows, dtype=np.int64))),
            self._records_path(),
            row_group_size=ROW_GROUP_ROWS,
        )
        self._src = self._spark.read.parquet(self._records_path().as_uri()).select(
            "*", _sql(to_units(sql_name(run.cost_column, "spark"))).alias("units")
        )
        return int(records.num_rows)

    dialect: Dialect = "spark"

    @staticmethod
    def quote(column: str) -> str:
        return sql_name(column, "spark")

    def choose(self, columns: Sequence[str], first_rule: str) -> pa.Table:
        src = self._require_src()
        types = {f.name: f.dataType for f in src.schema.fields}
        keys = (
            src.select(*(_as_text(c, types[c]) for c in columns)).distinct()
            if columns
            else self._spark.range(1).select()
        )
        table = keys.select("*", _sql(f"CAST({first_rule} AS INT)").alias("rule")).toArrow()
        return table.cast(pa.schema([*(pa.field(c, pa.string()) for c in columns), pa.field("rule", pa.int32())]))

    # -- stage 0 ---------------------------------------------------------------------
    def _splits(self, splits: pa.Table, pool: str | None = None) -> DataFrame:
        """Number the new decisions, and give ``splits`` each decision's number, total
        weight and share count, ready to broadcast."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        first = sum(t.num_rows for t in self._decisions) + 1
        decisions, numbers = number_decisions(splits, pool, first)
        self._decisions.append(decisions)
        by_decision = Window.partitionBy("decision_id")
        return (
            self._spark.createDataFrame(splits.append_column("decision", numbers))
            .withColumn("weight", _sql(f"CAST(weight AS {_INT})"))
            .withColumn("total", _sql(f"CAST(sum(weight) OVER (PARTITION BY decision_id) AS {_INT})"))
            .withColumn("n", F.count(F.lit(1)).over(by_decision))
        )

    def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
        from pyspark.sql import functions as F

        run = self._require_run()
        src = self._require_src()
        split_frame = self._splits(splits)
        key_columns = [c for c in assignments.column_names if c != "decision_id"]
        keys = F.broadcast(
            self._spark.createDataFrame(
                assignments.cast(pa.schema([pa.field(c, pa.string()) for c in assignments.column_names]))
            ).alias("a")
        )
        types = {f.name: f.dataType for f in src.schema.fields}
        lines = src.alias("r")
        if key_columns:
            on = reduce(
                lambda x, y: x & y,
                [_as_text(c, types[c], "r.").eqNullSafe(F.col("a." + sql_name(c, "spark"))) for c in key_columns],
            )
            hit = lines.join(keys, on)
        else:
            hit = lines.crossJoin(keys)
        months = F.broadcast(split_frame.select("decision_id", "months").distinct())
        hit = hit.select(f"r.{LINE}", "r.ChargePeriodStart", "r.ChargePeriodEnd", "r.units", "a.decision_id").join(
            months, "decision_id"
        )
        # One part per line, or one per month of an amortization schedule (even split, earlier months first).
        plain = hit.where("months IS NULL").select(
            "*", F.lit(str(run.period)).alias("period"), F.lit(0).alias("part_index")
        )
        n_parts = (
            "CASE WHEN months > 0 THEN months "
            "WHEN ChargePeriodEnd IS NULL OR ChargePeriodStart IS NULL THEN 1 "
            "ELSE greatest(1, (year(e) * 12 + month(e)) - (year(ChargePeriodStart) * 12 "
            "+ month(ChargePeriodStart)) + 1) END"
        )
        start = f"coalesce(ChargePeriodStart, TIMESTAMP '{run.period.start.isoformat()} 00:00:00')"
        amortized = (
            hit.where("months IS NOT NULL")
            .withColumn("e", _sql("ChargePeriodEnd - INTERVAL 1 MICROSECOND"))
            .withColumn("n_parts", _sql(f"CAST({n_parts} AS INT)"))
            .withColumn("part_index", F.explode(F.sequence(F.lit(0), F.col("n_parts") - 1)))
            .withColumn(
                "period",
                _sql(
                    f"greatest(date_format(add_months(date_trunc('MONTH', {start}), "
                    f"part_index), 'yyyy-MM'), '{run.period}')"
                ),
            )
            .withColumn("units", _sql(self._part_units()))
            .drop("e", "n_parts")
        )
        parts = plain.unionByName(amortized).drop("months", "ChargePeriodStart", "ChargePeriodEnd")
        rows = split_units(parts, split_frame, [LINE, "part_index"])
        self._write(
            rows.select(
                LINE,
                "period",
                "cost_center",
                _sql(to_money("units_out")).alias("amount"),
                F.lit(0).alias("stage"),
                "decision",
            )
        )

    @staticmethod
    def _part_units() -> str:
        """SQL: one month's part of an even amortization split (earlier months get the leftover units)."""
        a, n = f"CAST(abs(units) AS {_INT})", f"CAST(n_parts AS {_INT})"
        return (
            f"CAST(CASE WHEN units < 0 THEN -1 ELSE 1 END * ({_idiv(a, n)} "
            f"+ CASE WHEN part_index < {a} % {n} THEN 1 ELSE 0 END) AS {_INT})"
        )

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        from pyspark.sql import functions as F

        run = self._require_run()
        src = self._require_src()
        types = {f.name: f.dataType for f in src.schema.fields}
        basis = (
            self._ledger()
            .where(F.col("stage") == 0)
            .where(F.col("period") == str(run.period))
            .select(LINE, "cost_center", "amount")
            .join(
                src.select(LINE, F.col("BillingCurrency").alias("currency"), *(_as_text(c, types[c]) for c in columns)),
                LINE,
            )
        )
        group = ["cost_center", "currency", *columns]
        table = (
            basis.groupBy(*(F.col(sql_name(c, "spark")) for c in group))
            .agg(F.sum("amount").alias("amount"))
            .orderBy(*(F.col(sql_name(c, "spark")).asc_nulls_last() for c in group))
            .toArrow()
        )
        return table.cast(pa.schema([*(pa.field(c, pa.string()) for c in group), pa.field("amount", MONEY)]))

    # -- shared stages ---------------------------------------------------------------
    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        from pyspark.sql import functions as F

        self._require_run()
        split_frame = self._splits(splits, pool)
        decision_id = splits["decision_id"][0].as_py()
        balances = (
            self._ledger()
            .where(F.col("cost_center") == pool)
            .groupBy(LINE, "period")
            .agg(F.sum("amount").alias("balance"))
            .where("balance <> 0")
        )
        parts = _checkpoint(
            balances.select(
                LINE, "period", F.lit(decision_id).alias("decision_id"), _sql(to_units("balance")).alias("units")
            )
        )
        decision = self._decisions[-1]["decision"][0].as_py()
        out = parts.select(LINE, "period", F.lit(pool).alias("cost_center"), _sql(to_money("-units")).alias("amount"))
        consumers = split_units(parts, split_frame, [LINE, "period"]).select(
            LINE, "period", "cost_center", _sql(to_money("units_out")).alias("amount")
        )
        self._write(
            out.unionByName(consumers).select(
                LINE, "period", "cost_center", "amount", F.lit(stage).alias("stage"), F.lit(decision).alias("decision")
            )
        )

    def pool_balances(self, pools: Sequence[str]) -> pa.Table:
        from pyspark.sql import functions as F

        src = self._require_src()
        left = (
            self._ledger()
            .where(F.col("cost_center").isin(list(pools)))
            .select(LINE, "cost_center", "amount")
            .join(src.select(LINE, F.col("BillingCurrency").alias("currency")), LINE)
            .groupBy("cost_center", "currency")
            .agg(F.sum("amount").alias("amount"))
            .where("amount <> 0")
            .orderBy("cost_center", "currency")
            .toArrow()
        )
        return left.cast(
            pa.schema(
                [pa.field("cost_center", pa.string()), pa.field("currency", pa.string()), pa.field("amount", MONEY)]
            )
        )

    # -- results ---------------------------------------------------------------------
    def balances(self) -> pa.Table:
        from pyspark.sql import functions as F

        run = self._require_run()
        keys = ["currency", "billing_account_id", "period"]
        inputs = (
            self._require_src()
            .select(
                F.col("BillingCurrency").alias("currency"),
                F.col("BillingAccountId").alias("billing_account_id"),
                _sql("date_format(ChargePeriodStart, 'yyyy-MM')").alias("period"),
                F.col(sql_name(run.cost_column, "spark")),
            )
            .groupBy(*keys)
            .agg(F.sum(sql_name(run.cost_column, "spark")).alias("input"))
            .alias("i")
        )
        lines = self._require_src().select(
            LINE,
            F.col("BillingCurrency").alias("currency"),
            F.col("BillingAccountId").alias("billing_account_id"),
            _sql("date_format(ChargePeriodStart, 'yyyy-MM')").alias("period"),
        )
        ledger = (
            self._ledger()
            .groupBy(LINE)
            .agg(F.sum("amount").alias("amount"))
            .join(lines, LINE)
            .groupBy(*keys)
            .agg(F.sum("amount").alias("ledger"))
            .alias("l")
        )
        on = reduce(lambda x, y: x & y, [F.col(f"i.{k}").eqNullSafe(F.col(f"l.{k}")) for k in keys])
        zero = _sql(f"CAST(0 AS {_MONEY})")
        table = (
            inputs.join(ledger, on, "full_outer")
            .select(
                *(F.coalesce(F.col(f"i.{k}"), F.col(f"l.{k}")).alias(k) for k in keys),
                F.coalesce(F.col("input"), zero).alias("input"),
                F.coalesce(F.col("ledger"), zero).alias("ledger"),
            )
            .orderBy(*(F.col(k).asc_nulls_last() for k in keys))
            .toArrow()
        )
        return table.cast(
            pa.schema([*(pa.field(k, pa.string()) for k in keys), pa.field("input", MONEY), pa.field("ledger", MONEY)])
        )

    def finish(self) -> RunStore:
        """Have the executors write the narrow ledger next to the lines; a store on the
        driver sorts it and widens it into outputs, as for the DuckDB plane.

        The ledger never reaches the driver's JVM, and the line items come back from their
        Parquet file text-encoded, as the DuckDB plane keeps them.
        """
        run = self._require_run()
        directory = self._require_dir()
        self._ledger().withColumnRenamed(LINE, "line").write.parquet((directory / "ledger").as_uri())
        schema = pq.read_schema(self._records_path())
        lines = encoded_lines(
            read_parquet_columns(
                self._records_path(),
                {n: n for n in schema.names},
                {f.name for f in schema if pa.types.is_string(f.type)},
            )
        )
        connection = connect()
        connection.execute(
            f"SET memory_limit = {sql_text(STORE_MEMORY_LIMIT)}; "
            f"SET temp_directory = {sql_text(str(directory / 'spill'))}"
        )
        connection.register("decisions", pa.concat_tables([NUMBERED_DECISION_SCHEMA.empty_table(), *self._decisions]))
        # Read once: the store sorts the ledger in slices, each a scan of it.
        connection.execute(
            f"CREATE TEMP TABLE ledger_rows AS SELECT * FROM "
            f"{store.parquet_source(sorted((directory / 'ledger').glob('*.parquet')))}"
        )
        run_store = SortedLedgerStore(
            connection, lines, "ledger_rows", run, cleanup=partial(shutil.rmtree, directory, ignore_errors=True)
        )
        self._dir, self._pieces, self._decisions, self._src = None, [], [], None
        return run_store

    def close(self) -> None:
        """Drop the run's data and the files no store owns; the session stays (it may be a cluster's)."""
        self._pieces, self._decisions, self._src = [], [], None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- internals -------------------------------------------------------------------
    def _write(self, rows: DataFrame) -> None:
        """Add ledger rows, computed once and kept for later stages."""
        self._pieces.append(_checkpoint(rows.select(*_LEDGER_ROWS)))

    def _ledger(self) -> DataFrame:
        if not self._pieces:
            return self._spark.createDataFrame(
                pa.schema(
                    [
                        pa.field(LINE, pa.int64()),
                        *(LEDGER_SCHEMA.field(c) for c in _LEDGER_ROWS[1:-1]),
                        NUMBERED_DECISION_SCHEMA.field("decision"),
                    ]
                ).empty_table()
            )
        return reduce(lambda x, y: x.unionByName(y), self._pieces)

    def _records_path(self) -> Path:
        return self._require_dir() / "records.parquet"

    def _require_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("load() must come first")
        return self._dir

    def _require_run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("load() must come first")
        return self._run

    def _require_src(self) -> DataFrame:
        if self._src is None:
            raise RuntimeError("load() must come first")
        return self._src
