"""The DuckDB data plane: decisions joined onto line items and split in exact integer SQL.

Amounts become integer units of 10**-LEDGER_SCALE (HUGEINT, below 1e38) for the split, because DuckDB divides
DECIMALs in floating point. ``floor(a * w / W)`` is computed as ``(a // W) * w +
(a % W) * w // W`` so intermediates stay below ``W * w`` (the kernel keeps ``W`` ≤ 1e18).

The line items stay in Arrow (DuckDB scans them in place). The working ledger is narrow,
because it is several rows per line: the line's position, the period, the cost center,
integer units, the stage, a small integer naming the decision and the currency. Everything
else (the source line's columns, the decision's ids, the run's stamps) is added by the
:class:`~chargeback_engine.engine.store.SortedLedgerStore`, batch by batch, only while an
output is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.engine.dataplane import RunInfo, number_decisions
from chargeback_engine.engine.store import (
    LINE,
    RunStore,
    SortedLedgerStore,
    encoded_lines,
    one_chunk,
)
from chargeback_engine.errors import InputError
from chargeback_engine.focus import MONEY
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE, tie_order
from chargeback_engine.sql_common import Dialect, connect, sql_name

#: Integer units back to money: one exact product, DECIMAL(38,0) * DECIMAL(S+1,S).
_TO_MONEY = (
    f"CAST({{}} AS DECIMAL(38,0)) * CAST({format(LEDGER_QUANTUM, 'f')} AS DECIMAL({LEDGER_SCALE + 1},{LEDGER_SCALE}))"
    f"::DECIMAL(38,{LEDGER_SCALE})"
)
#: The allocated column's integer units, in two halves next to the line items DuckDB scans
#: (see :func:`_unit_halves`), and as one HUGEINT.
_HIGH, _LOW = "_units_high", "_units_low"
_UNITS = f"CAST({_HIGH} AS HUGEINT) * {1 << 64} + {_LOW}"


def _with_units(lines: str) -> str:
    """The line items of the Arrow relation ``lines`` (as :meth:`DuckDBPlane.load` registers
    them) with their money as one HUGEINT of units."""
    return f"SELECT * EXCLUDE ({_HIGH}, {_LOW}), {_UNITS} AS units FROM {lines}"


def _unit_halves(money: pa.ChunkedArray) -> dict[str, pa.Array]:
    """Money as exact integer units of 10**-S, without computing any: a ``DECIMAL(38, S)``
    value is stored as its units, a 128-bit integer, handed over as its signed high and
    unsigned low 64 bits. (In SQL, ``money * 10**S`` overflows DECIMAL(38, S) from
    1e(38-2S); the exact way round, through the integer and fractional parts, cost ~0.6 CPU s
    per 1M lines, and DuckDB's cast of DECIMAL(38, 0) to HUGEINT ~0.25 s, in each query.)"""
    column = one_chunk(money).cast(MONEY)
    words = np.frombuffer(column.buffers()[1], dtype=np.int64)[2 * column.offset : 2 * (column.offset + len(column))]
    null = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
    return {_HIGH: pa.array(words[1::2], mask=null), _LOW: pa.array(words[0::2].view(np.uint64), mask=null)}


#: Prefix of the column that holds a dictionary-encoded text column's indices, next to it.
_INDEX = "_index_"


#: Lines per allocation query: the split's window holds every share of its lines at once
#: (2 GB above the ledger at 10M lines in one query), against one more scan per slice.
ALLOCATE_LINES = 1 << 20
#: The working ledger: several narrow rows per line, about 80 bytes each, in an in-memory
#: database that compresses what a checkpoint finds (to about a third).
LEDGER_ROWS = "work.ledger_rows"
#: Rows the working ledger holds (about 1.3 GB uncompressed) before each insert is
#: checkpointed, which compresses it. A checkpoint costs about 0.16 s per 1M rows (0.4 s of a
#: 3.9 s run at 1M lines), so only the ledgers that memory needs it for pay it: the 39M rows
#: of `chargeback bench engine` at 10M lines peaked at 6.6 GB uncompressed, 5.2 GB so.
COMPRESS_ABOVE_ROWS = 1 << 24


#: Total weights up to this fit the remainder arithmetic in BIGINT (``r * w < total²``);
#: above it, HUGEINT, whose division is many times slower.
BIGINT_TOTAL = 3037000499


def _splits_sql(source: str) -> str:
    """The ``splits`` table :func:`_split_sql` reads, from ``source``'s rows of
    :data:`~chargeback_engine.engine.dataplane.SPLIT_SCHEMA` and their ``decision`` numbers:
    each share with its decision's total weight, share count, and whether its weights are
    all equal."""
    return f"""
        SELECT decision, cost_center, position, months, CAST(weight AS HUGEINT) AS weight,
               sum(CAST(weight AS HUGEINT)) OVER (PARTITION BY decision) AS total,
               count(*) OVER (PARTITION BY decision) AS n,
               min(weight) OVER (PARTITION BY decision) = max(weight) OVER (PARTITION BY decision) AS equal
        FROM {source}"""


def _split_sql(parts: str, partition: str, splits: pa.Table) -> str:
    """Largest-remainder split of ``parts.units`` by ``splits`` weights, as in ``money.split``,
    ties rotated by the line (:func:`~chargeback_engine.money.tie_order`).

    ``parts`` must have ``line``, ``decision`` and ``units``; the result adds ``cost_center`` and
    the split ``units_out``. Each part is divided once by its decision's total weight ``W``
    (``a = q·W + r``); a share of weight ``w`` is then ``q·w + ⌊r·w / W⌋``, plus one leftover
    unit when its remainder ranks among the ``r - Σ⌊r·w / W⌋`` largest. Parts that divide
    evenly (``r = 0``) need no ranking, nor do shares of equal weight: their remainders tie,
    so the rotation alone ranks them, and the first ``r mod n`` in its order get a unit
    (ranking 1M shares took 0.4 s at 1M lines). Small totals keep the per-share arithmetic
    in BIGINT. Only the branches ``splits`` needs are generated (DuckDB's planning time
    grows with the query, and small runs are all planning).
    """
    shares: dict[str, list[int]] = {}  # a few rows per decision
    for decision_id, weight in zip(splits["decision_id"].to_pylist(), splits["weight"].to_pylist(), strict=True):
        shares.setdefault(decision_id, []).append(int(weight))
    multi = [weights for weights in shares.values() if len(weights) > 1]
    ranked_totals = [sum(weights) for weights in multi if len(set(weights)) > 1]
    single = f"""
    SELECT p.* EXCLUDE (units), s.cost_center, p.units AS units_out
    FROM {parts} p JOIN splits s USING (decision) WHERE s.n = 1"""
    divided = f"""
        SELECT p.*, abs(p.units) // t.total AS q, abs(p.units) % t.total AS r, t.total, t.equal
        FROM {parts} p JOIN (SELECT DISTINCT decision, total, n, equal FROM splits WHERE n > 1) t USING (decision)"""
    even = f"""
    SELECT d.* EXCLUDE (units, q, r, total, equal), s.cost_center, sign(d.units) * d.q * s.weight AS units_out
    FROM ({divided}) d JOIN splits s USING (decision) WHERE d.r = 0"""
    equal = f"""
    SELECT d.* EXCLUDE (units, q, r, total, equal), s.cost_center,
           sign(d.units) * (d.q * s.weight + d.r // s.n
                            + CASE WHEN {tie_order("s.position", "d.line", "s.n")} < d.r % s.n THEN 1 ELSE 0 END)
           AS units_out
    FROM ({divided}) d JOIN splits s USING (decision) WHERE d.r > 0 AND d.equal"""

    def remainder(integer: str, where: str) -> str:
        r, w, total = (f"CAST({x} AS {integer})" for x in ("d.r", "s.weight", "d.total"))
        # The window carries as few columns as it can: it sorts them all.
        return f"""
    SELECT * EXCLUDE (sgn, qw, r, fl, rem, tie, lo, rnk),
           sgn * (qw + fl + CASE WHEN rnk <= lo THEN 1 ELSE 0 END) AS units_out
    FROM (
        SELECT *, r - sum(fl) OVER w AS lo, row_number() OVER (w ORDER BY rem DESC, tie) AS rnk
        FROM (
            SELECT d.* EXCLUDE (units, q, r, total, equal), sign(d.units) AS sgn, s.cost_center,
                   d.q * s.weight AS qw, {r} AS r, {r} * {w} // {total} AS fl, {r} * {w} % {total} AS rem,
                   {tie_order("s.position", "d.line", "s.n")} AS tie
            FROM ({divided}) d JOIN splits s USING (decision) WHERE d.r > 0 AND NOT d.equal AND {where}
        )
        WINDOW w AS (PARTITION BY {partition})
    )"""

    branches = [
        sql
        for sql, wanted in (
            (single, any(len(weights) == 1 for weights in shares.values())),
            (even, bool(multi)),
            (equal, any(len(set(weights)) == 1 for weights in multi)),
            (remainder("BIGINT", f"d.total <= {BIGINT_TOTAL}"), any(t <= BIGINT_TOTAL for t in ranked_totals)),
            (remainder("HUGEINT", f"d.total > {BIGINT_TOTAL}"), any(t > BIGINT_TOTAL for t in ranked_totals)),
        )
        if wanted
    ]
    return "\n    UNION ALL BY NAME".join(branches or [single])


class DuckDBPlane:
    """:class:`~chargeback_engine.engine.dataplane.DataPlane` on an in-process DuckDB."""

    def __init__(self, threads: int | None = None):
        self._con = connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._run: RunInfo | None = None
        self._records = pa.table({})
        self._lines = pa.table({})  # the line items as DuckDB reads them: units in halves, text indices
        self._finished = False
        self._last_stage: int | None = None
        self._ledger_rows = 0
        self._in_order = True  # each insert is sorted and comes after the rows before it in LEDGER_ORDER

    # -- loading ---------------------------------------------------------------------
    def load(self, records: pa.Table, run: RunInfo) -> int:
        self._run = run
        self._records = encoded_lines(records)
        con = self._con
        halves = _unit_halves(self._records[run.cost_column])
        columns = dict(zip(self._records.column_names, self._records.columns, strict=True))
        indices = {_INDEX + name: one_chunk(c).indices for name, c in columns.items() if pa.types.is_dictionary(c.type)}
        self._lines = pa.table({**columns, **halves, **indices})
        con.register("src_arrow", self._lines)
        cost = sql_name(run.cost_column)
        con.execute(f"CREATE TEMP VIEW src AS {_with_units('src_arrow')}")
        missing = con.sql(f"SELECT x_SourceId, x_SourceRow FROM src_arrow WHERE {cost} IS NULL LIMIT 1").fetchall()
        if missing:
            raise InputError(f"{missing[0][0]}: row {missing[0][1]}: column {run.cost_column} is empty")
        con.execute(f"""
            ATTACH ':memory:' AS work (COMPRESS);
            CREATE TABLE {LEDGER_ROWS} (
                line BIGINT, period VARCHAR, cost_center VARCHAR, units HUGEINT, stage INTEGER, decision INTEGER,
                currency VARCHAR);
            CREATE TEMP TABLE decisions (
                decision INTEGER, decision_id VARCHAR, rule_id VARCHAR, method VARCHAR, category VARCHAR,
                pool VARCHAR);
        """)
        return int(records.num_rows)

    dialect: Dialect = "duckdb"

    @staticmethod
    def quote(column: str) -> str:
        return sql_name(column)

    def choose(self, columns: Sequence[str], first_rule: str) -> pa.Table:
        """Distinct keys by the text columns' dictionary indices, decoded afterwards, and kept
        with their indices as ``key_index``: grouping and joining 1M lines on a dozen integer
        columns takes a fraction of the time it takes on their text."""
        con = self._con
        if not columns:
            return con.sql(f"SELECT CAST({first_rule} AS INTEGER) AS rule").to_arrow_table()
        encoded = self._dictionaries(columns)
        held = ", ".join(
            sql_name(_INDEX + c) if c in encoded else f"CAST({sql_name(c)} AS VARCHAR) AS {sql_name(c)}"
            for c in columns
        )
        distinct = con.sql(f"SELECT DISTINCT {held} FROM src_arrow").to_arrow_table()
        decoded = {c: dictionary.take(distinct[_INDEX + c]).cast(pa.string()) for c, dictionary in encoded.items()}
        keys = pa.table(
            {
                **{c: decoded[c] if c in encoded else distinct[c] for c in columns},
                **{_INDEX + c: distinct[_INDEX + c] for c in encoded},
            }
        )
        con.register("keys_arrow", keys)
        con.execute("CREATE OR REPLACE TEMP TABLE key_index AS SELECT * FROM keys_arrow")
        con.unregister("keys_arrow")
        names = ", ".join(sql_name(c) for c in columns)
        # A text held twice in a dictionary (one per file it came from) would make two keys of one.
        repeats = any(pc.count_distinct(d).as_py() < len(d) for d in encoded.values())
        keys_sql = f"(SELECT DISTINCT {names} FROM key_index)" if repeats else "key_index"
        return con.sql(f"SELECT {names}, CAST({first_rule} AS INTEGER) AS rule FROM {keys_sql}").to_arrow_table()

    # -- decisions -------------------------------------------------------------------
    def _register_splits(self, splits: pa.Table, pool: str | None = None) -> None:
        """Number the new decisions, and expose ``splits`` by number with each decision's
        total weight and share count."""
        con = self._con
        first = con.sql("SELECT count(*) + 1 FROM decisions").fetchall()[0][0]
        decisions, numbers = number_decisions(splits, pool, first)
        con.register("decisions_arrow", decisions)
        con.execute("INSERT INTO decisions SELECT * FROM decisions_arrow")
        con.unregister("decisions_arrow")
        con.register("splits_arrow", splits.append_column("decision", numbers))
        con.execute(f"CREATE OR REPLACE TEMP TABLE splits AS {_splits_sql('splits_arrow')}")
        con.unregister("splits_arrow")

    # -- stage 0 ---------------------------------------------------------------------
    def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
        run = self._require_run()
        self._appending(0)
        con = self._con
        self._register_splits(splits)
        key_columns = [c for c in assignments.column_names if c != "decision_id"]
        con.register("assignments_arrow", assignments)
        if key_columns:  # each key by its text columns' indices (see choose)
            by_text = " AND ".join(f"a.{sql_name(c)} IS NOT DISTINCT FROM k.{sql_name(c)}" for c in key_columns)
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE assignments AS
                SELECT k.*, d.decision
                FROM assignments_arrow a JOIN key_index k ON {by_text} JOIN decisions d USING (decision_id)
            """)
            encoded = self._dictionaries(key_columns)
            on = " AND ".join(
                f"r.{sql_name(_INDEX + c)} IS NOT DISTINCT FROM a.{sql_name(_INDEX + c)}"
                if c in encoded
                else f"CAST(r.{sql_name(c)} AS VARCHAR) IS NOT DISTINCT FROM a.{sql_name(c)}"
                for c in key_columns
            )
            hit = f"({_with_units('slice_arrow')}) r JOIN assignments a ON {on}"
        else:
            con.execute("""
                CREATE OR REPLACE TEMP TABLE assignments AS
                SELECT d.decision FROM assignments_arrow a JOIN decisions d USING (decision_id)
            """)
            hit = f"({_with_units('slice_arrow')}) r CROSS JOIN assignments a"
        con.unregister("assignments_arrow")
        # One part per line, or one per month of an amortization schedule (even split, earlier
        # months first). The schedule part of the query is only generated when needed.
        amortized = splits["months"].null_count < splits.num_rows
        n_parts = (
            """
                   , CASE WHEN m.months > 0 THEN m.months
                          WHEN r.ChargePeriodEnd IS NULL OR r.ChargePeriodStart IS NULL THEN 1
                          ELSE greatest(1, date_diff('month', date_trunc('month', r.ChargePeriodStart),
                                                     date_trunc('month', r.ChargePeriodEnd - INTERVAL 1 MICROSECOND)) + 1)
                     END AS n_parts"""
            if amortized
            else ""
        )
        schedule = (
            f"""
                UNION ALL BY NAME
                SELECT line, decision, currency,
                       greatest(strftime(date_trunc('month', coalesce(ChargePeriodStart, TIMESTAMPTZ '{run.period.start}'))
                                         + to_months(CAST(i AS INTEGER)), '%Y-%m'), '{run.period}') AS period,
                       i AS part_index,
                       sign(units) * (abs(units) // n_parts + CASE WHEN i < abs(units) % n_parts THEN 1 ELSE 0 END) AS units
                FROM hit, LATERAL (SELECT unnest(range(n_parts)) AS i) WHERE months IS NOT NULL"""
            if amortized
            else ""
        )
        insert = f"""
            INSERT INTO {LEDGER_ROWS} BY NAME
            WITH hit AS MATERIALIZED (
                SELECT r.{LINE} AS line, r.ChargePeriodStart, r.units, r.BillingCurrency AS currency, a.decision,
                       m.months {n_parts}
                FROM {hit} JOIN (SELECT DISTINCT decision, months FROM splits) m USING (decision)
            ), parts AS MATERIALIZED (
                SELECT line, decision, units, currency, '{run.period}' AS period, 0 AS part_index
                FROM hit WHERE months IS NULL {schedule}
            )
            SELECT line, period, cost_center, units_out AS units, 0 AS stage, decision, currency
            FROM ({_split_sql("parts", "line, part_index", splits)})
            ORDER BY line, period, cost_center, units
        """
        for first in range(0, len(self._records), ALLOCATE_LINES):  # a slice is read in place, not filtered
            con.register("slice_arrow", self._lines.slice(first, ALLOCATE_LINES))
            self._inserted(con.execute(insert))
            con.unregister("slice_arrow")

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        run = self._require_run()
        extra = "".join(f", CAST(r.{sql_name(c)} AS VARCHAR) AS {sql_name(c)}" for c in columns)
        group = "".join(f", {i + 3}" for i in range(len(columns)))
        return self._con.sql(
            f"""
            SELECT l.cost_center, r.BillingCurrency AS currency{extra}, {_TO_MONEY.format("sum(l.units)")} AS amount
            FROM {LEDGER_ROWS} l JOIN src_arrow r ON r.{LINE} = l.line
            WHERE l.stage = 0 AND l.period = ?
            GROUP BY 1, 2{group} ORDER BY ALL
        """,
            params=[str(run.period)],
        ).to_arrow_table()

    # -- shared stages ---------------------------------------------------------------
    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        self._require_run()
        self._appending(stage)
        self._register_splits(splits, pool)
        inserted = self._con.execute(
            f"""
            INSERT INTO {LEDGER_ROWS} BY NAME
            WITH parts AS MATERIALIZED (
                SELECT line, period, currency, (SELECT max(decision) FROM splits) AS decision, sum(units) AS units
                FROM {LEDGER_ROWS} WHERE cost_center = ? GROUP BY line, period, currency HAVING sum(units) <> 0
            )
            SELECT line, period, ? AS cost_center, -units AS units, ? AS stage, decision, currency FROM parts
            UNION ALL BY NAME
            SELECT line, period, cost_center, units_out AS units, ? AS stage, decision, currency
            FROM ({_split_sql("parts", "line, period", splits)})
            ORDER BY line, period, cost_center, units
        """,
            [pool, pool, stage, stage],
        )
        self._inserted(inserted)

    def pool_balances(self, pools: Sequence[str]) -> pa.Table:
        return self._con.sql(
            f"""
            SELECT l.cost_center, r.BillingCurrency AS currency, {_TO_MONEY.format("sum(l.units)")} AS amount
            FROM {LEDGER_ROWS} l JOIN src_arrow r ON r.{LINE} = l.line
            WHERE list_contains(?, l.cost_center) GROUP BY ALL HAVING sum(l.units) <> 0 ORDER BY ALL
        """,
            params=[list(pools)],
        ).to_arrow_table()

    # -- results ---------------------------------------------------------------------
    def balances(self) -> pa.Table:
        """Each line's ledger rows summed first (a group by an integer), so the line items are
        joined once per line, not once per ledger row; a ledger row whose line is not loaded
        lands in a group of its own, with no input."""
        return self._con.sql(f"""
            WITH per_line AS (SELECT line, sum(units) AS ledger FROM {LEDGER_ROWS} GROUP BY line),
            groups AS (
                SELECT r.BillingCurrency AS currency, r.BillingAccountId AS billing_account_id,
                       date_trunc('month', r.ChargePeriodStart) AS month,
                       coalesce(sum(r.units), 0) AS input, coalesce(sum(l.ledger), 0) AS ledger
                FROM src r FULL OUTER JOIN per_line l ON l.line = r.{LINE}
                GROUP BY ALL
            )
            SELECT currency, billing_account_id, strftime(month, '%Y-%m') AS period,
                   {_TO_MONEY.format("input")} AS input, {_TO_MONEY.format("ledger")} AS ledger
            FROM groups ORDER BY ALL
        """).to_arrow_table()

    def finish(self) -> RunStore:
        """Hand the narrow ledger to a store, which reads it in ledger order (sorting it once if the
        inserts were not in order) and widens it as outputs stream."""
        run_store = SortedLedgerStore(
            self._con,
            self._records,
            LEDGER_ROWS,
            self._require_run(),
            amount=_TO_MONEY.format("units"),
            in_order=self._in_order,
        )
        self._finished = True
        return run_store

    def close(self) -> None:
        """Close the connection, unless :meth:`finish` handed it to a store."""
        if not self._finished:
            self._con.close()

    def _dictionaries(self, columns: Sequence[str]) -> dict[str, pa.Array]:
        """The dictionary of each of ``columns`` that the line items hold dictionary-encoded
        (the others are matched as text)."""
        return {
            c: one_chunk(self._records[c]).dictionary
            for c in columns
            if pa.types.is_dictionary(self._records.schema.field(c).type)
        }

    def _inserted(self, insert: duckdb.DuckDBPyConnection) -> None:
        """Count the rows ``insert`` added; past :data:`COMPRESS_ABOVE_ROWS`, compress them."""
        self._ledger_rows += insert.fetchall()[0][0]
        if self._ledger_rows > COMPRESS_ABOVE_ROWS:
            self._con.execute("CHECKPOINT work")

    def _appending(self, stage: int) -> None:
        """Note an insert of ``stage``'s rows: sorted within itself, the ledger stays in
        :data:`~chargeback_engine.engine.store.LEDGER_ORDER` while stages come in ascending
        order, once each (a second allocation, for the direct-cost basis, comes after the first)."""
        if self._last_stage is not None and stage <= self._last_stage:
            self._in_order = False
        self._last_stage = stage

    def _require_run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("load() must come first")
        return self._run
