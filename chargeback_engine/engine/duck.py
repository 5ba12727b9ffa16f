"""The DuckDB data plane: decisions joined onto line items and split in exact integer SQL.

Amounts become integer units of 10**-LEDGER_SCALE (HUGEINT, below 1e38) for the split, because DuckDB divides
DECIMALs in floating point. ``floor(a * w / W)`` is computed as ``(a // W) * w +
(a % W) * w // W`` so intermediates stay below ``W * w`` (the kernel keeps ``W`` ≤ 1e18).

The line items stay in Arrow (DuckDB scans them in place). The working ledger is narrow,
because it is several rows per line: the line's position, the period, the cost center,
integer units, the stage and a small integer naming the decision, kept compressed. Everything
else (the source line's columns, the decision's ids, the run's stamps) is added by the
:class:`~chargeback_engine.engine.store.SortedLedgerStore`, batch by batch, only while an
output is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.engine.dataplane import RunInfo, number_decisions
from chargeback_engine.engine.store import (
    LINE,
    RunStore,
    SortedLedgerStore,
    connect,
    encoded_lines,
)
from chargeback_engine.errors import InputError
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE

_UNIT = 10**LEDGER_SCALE
#: Integer units back to money: one exact product, DECIMAL(38,0) * DECIMAL(S+1,S).
_TO_MONEY = (f"CAST({{}} AS DECIMAL(38,0)) * CAST({format(LEDGER_QUANTUM, 'f')} AS DECIMAL({LEDGER_SCALE + 1},{LEDGER_SCALE}))"
             f"::DECIMAL(38,{LEDGER_SCALE})")
#: Money to units in two exact parts: ``money * 10**S`` as one DECIMAL(38,S) product would
#: overflow for amounts of 1e(38-2S) and more, which the cost table allows.
_TO_UNITS = (f"(CAST(trunc({{0}}) AS HUGEINT) * {_UNIT}"
             f" + CAST(({{0}} - trunc({{0}})) * {_UNIT} AS HUGEINT))")


#: Lines per allocation query: the split's window holds every share of its lines at once
#: (2 GB above the ledger at 10M lines in one query), against one more scan per slice.
ALLOCATE_LINES = 1 << 20
#: The working ledger, in a compressed in-memory database (checkpointed after each insert):
#: several narrow rows per line, a third of their uncompressed size.
LEDGER_ROWS = "work.ledger_rows"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _split_sql(parts: str, partition: str, splits: pa.Table) -> str:
    """Largest-remainder split of ``parts.units`` by ``splits`` weights, as in ``money.split``.

    ``parts`` must have ``decision`` and ``units``; the result adds ``cost_center`` and
    the split ``units_out``. Single-share decisions skip the window, and only the branches
    ``splits`` needs are generated (DuckDB's planning time grows with the query, and small
    runs are all planning).
    """
    shares = pc.value_counts(splits["decision_id"]).field("counts") if splits.num_rows else pa.array([], pa.int64())
    single = f"""
    SELECT p.* EXCLUDE (units), s.cost_center, p.units AS units_out
    FROM {parts} p JOIN splits s USING (decision) WHERE s.n = 1"""
    multi = f"""
    SELECT * EXCLUDE (units, position, fl, rem, a, lo, rnk),
           sign(units) * (fl + CASE WHEN rnk <= lo THEN 1 ELSE 0 END) AS units_out
    FROM (
        SELECT *, a - sum(fl) OVER w AS lo, row_number() OVER (w ORDER BY rem DESC, position) AS rnk
        FROM (
            SELECT p.*, s.cost_center, s.position, abs(p.units) AS a,
                   (abs(p.units) // s.total) * s.weight + (abs(p.units) % s.total) * s.weight // s.total AS fl,
                   ((abs(p.units) % s.total) * s.weight) % s.total AS rem
            FROM {parts} p JOIN splits s USING (decision) WHERE s.n > 1
        )
        WINDOW w AS (PARTITION BY {partition})
    )"""
    branches = [sql for sql, wanted in ((single, pc.any(pc.equal(shares, 1)).as_py()),
                                         (multi, pc.any(pc.greater(shares, 1)).as_py())) if wanted]
    return "\n    UNION ALL BY NAME".join(branches or [single])


class DuckDBPlane:
    """:class:`~chargeback_engine.engine.dataplane.DataPlane` on an in-process DuckDB."""

    def __init__(self, threads: int | None = None):
        self._con = connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._run: RunInfo | None = None
        self._records = pa.table({})
        self._finished = False

    # -- loading ---------------------------------------------------------------------
    def load(self, records: pa.Table, run: RunInfo) -> int:
        self._run = run
        self._records = encoded_lines(records)
        con = self._con
        con.register("src_arrow", self._records)
        cost = _ident(run.cost_column)
        con.execute(f"""
            CREATE TEMP VIEW src AS
            SELECT *, {_TO_UNITS.format(cost)} AS units FROM src_arrow
        """)
        missing = con.sql(f"SELECT x_SourceId, x_SourceRow FROM src_arrow WHERE {cost} IS NULL LIMIT 1").fetchall()
        if missing:
            raise InputError(f"{missing[0][0]}: row {missing[0][1]}: column {run.cost_column} is empty")
        con.execute(f"""
            ATTACH ':memory:' AS work (COMPRESS);
            CREATE TABLE {LEDGER_ROWS} (
                line BIGINT, period VARCHAR, cost_center VARCHAR, units HUGEINT, stage INTEGER, decision INTEGER);
            CREATE TEMP TABLE decisions (
                decision INTEGER, decision_id VARCHAR, rule_id VARCHAR, method VARCHAR, category VARCHAR,
                pool VARCHAR);
        """)
        return records.num_rows

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        if not columns:
            return pa.table({})
        cols = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        order = ", ".join(_ident(c) for c in columns)
        return self._con.sql(f"SELECT DISTINCT {cols} FROM src_arrow ORDER BY {order}").to_arrow_table()

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
        con.execute("""
            CREATE OR REPLACE TEMP TABLE splits AS
            SELECT decision, cost_center, position, months, CAST(weight AS HUGEINT) AS weight,
                   sum(CAST(weight AS HUGEINT)) OVER (PARTITION BY decision) AS total,
                   count(*) OVER (PARTITION BY decision) AS n
            FROM splits_arrow
        """)
        con.unregister("splits_arrow")

    # -- stage 0 ---------------------------------------------------------------------
    def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
        run = self._require_run()
        con = self._con
        self._register_splits(splits)
        key_columns = [c for c in assignments.column_names if c != "decision_id"]
        con.register("assignments_arrow", assignments)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE assignments AS
            SELECT a.* EXCLUDE (decision_id), d.decision FROM assignments_arrow a JOIN decisions d USING (decision_id)
        """)
        con.unregister("assignments_arrow")
        if key_columns:
            on = " AND ".join(f"CAST(r.{_ident(c)} AS VARCHAR) IS NOT DISTINCT FROM a.{_ident(c)}" for c in key_columns)
            hit = f"src r JOIN assignments a ON {on}"
        else:
            hit = "src r CROSS JOIN assignments a"
        # One part per line, or one per month of an amortization schedule (even split, earlier
        # months first). The schedule part of the query is only generated when needed.
        amortized = splits["months"].null_count < splits.num_rows
        n_parts = """
                   , CASE WHEN m.months > 0 THEN m.months
                          WHEN r.ChargePeriodEnd IS NULL OR r.ChargePeriodStart IS NULL THEN 1
                          ELSE greatest(1, date_diff('month', date_trunc('month', r.ChargePeriodStart),
                                                     date_trunc('month', r.ChargePeriodEnd - INTERVAL 1 MICROSECOND)) + 1)
                     END AS n_parts""" if amortized else ""
        schedule = f"""
                UNION ALL BY NAME
                SELECT line, decision,
                       strftime(date_trunc('month', coalesce(ChargePeriodStart, TIMESTAMPTZ '{run.period.start}'))
                                + to_months(CAST(i AS INTEGER)), '%Y-%m') AS period,
                       i AS part_index,
                       sign(units) * (abs(units) // n_parts + CASE WHEN i < abs(units) % n_parts THEN 1 ELSE 0 END) AS units
                FROM hit, LATERAL (SELECT unnest(range(n_parts)) AS i) WHERE months IS NOT NULL""" if amortized else ""
        insert = f"""
            INSERT INTO {LEDGER_ROWS} BY NAME
            WITH hit AS MATERIALIZED (
                SELECT r.{LINE} AS line, r.ChargePeriodStart, r.units, a.decision, m.months {n_parts}
                FROM {hit} JOIN (SELECT DISTINCT decision, months FROM splits) m USING (decision)
                WHERE r.{LINE} >= $first AND r.{LINE} < $first + {ALLOCATE_LINES}
            ), parts AS MATERIALIZED (
                SELECT line, decision, units, '{run.period}' AS period, 0 AS part_index
                FROM hit WHERE months IS NULL {schedule}
            )
            SELECT line, period, cost_center, units_out AS units, 0 AS stage, decision
            FROM ({_split_sql('parts', 'line, part_index', splits)})
        """
        for first in range(0, len(self._records), ALLOCATE_LINES):
            con.execute(insert, {"first": first})
            con.execute("CHECKPOINT work")  # compresses the rows just inserted

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        run = self._require_run()
        extra = "".join(f", CAST(r.{_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        group = "".join(f", {i + 3}" for i in range(len(columns)))
        return self._con.sql(f"""
            SELECT l.cost_center, r.BillingCurrency AS currency{extra}, {_TO_MONEY.format('sum(l.units)')} AS amount
            FROM {LEDGER_ROWS} l JOIN src_arrow r ON r.{LINE} = l.line
            WHERE l.stage = 0 AND l.period = ?
            GROUP BY 1, 2{group} ORDER BY ALL
        """, params=[str(run.period)]).to_arrow_table()

    # -- shared stages ---------------------------------------------------------------
    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        self._require_run()
        self._register_splits(splits, pool)
        self._con.execute(f"""
            INSERT INTO {LEDGER_ROWS} BY NAME
            WITH parts AS MATERIALIZED (
                SELECT line, period, (SELECT max(decision) FROM splits) AS decision, sum(units) AS units
                FROM {LEDGER_ROWS} WHERE cost_center = ? GROUP BY line, period HAVING sum(units) <> 0
            )
            SELECT line, period, ? AS cost_center, -units AS units, ? AS stage, decision FROM parts
            UNION ALL BY NAME
            SELECT line, period, cost_center, units_out AS units, ? AS stage, decision
            FROM ({_split_sql('parts', 'line, period', splits)})
        """, [pool, pool, stage, stage])
        self._con.execute("CHECKPOINT work")

    # -- results ---------------------------------------------------------------------
    def balances(self) -> pa.Table:
        return self._con.sql(f"""
            WITH i AS (
                SELECT BillingCurrency AS currency, BillingAccountId AS billing_account_id,
                       strftime(ChargePeriodStart, '%Y-%m') AS period, sum(units) AS input
                FROM src GROUP BY ALL
            ), l AS (
                SELECT r.BillingCurrency AS currency, r.BillingAccountId AS billing_account_id,
                       strftime(r.ChargePeriodStart, '%Y-%m') AS period, sum(l.units) AS ledger
                FROM {LEDGER_ROWS} l JOIN src_arrow r ON r.{LINE} = l.line GROUP BY ALL
            )
            SELECT coalesce(i.currency, l.currency) AS currency,
                   coalesce(i.billing_account_id, l.billing_account_id) AS billing_account_id,
                   coalesce(i.period, l.period) AS period,
                   {_TO_MONEY.format('coalesce(input, 0)')} AS input, {_TO_MONEY.format('coalesce(ledger, 0)')} AS ledger
            FROM i FULL OUTER JOIN l  -- a source without billing accounts still balances: nulls match nulls
              ON i.currency IS NOT DISTINCT FROM l.currency
             AND i.billing_account_id IS NOT DISTINCT FROM l.billing_account_id
             AND i.period IS NOT DISTINCT FROM l.period
            ORDER BY ALL
        """).to_arrow_table()

    def finish(self) -> RunStore:
        """Hand the narrow ledger to a store, which sorts it once and widens it as outputs stream."""
        run_store = SortedLedgerStore(self._con, self._records, LEDGER_ROWS, self._require_run(),
                                      amount=_TO_MONEY.format("units"))
        self._finished = True
        return run_store

    def close(self) -> None:
        """Close the connection, unless :meth:`finish` handed it to a store."""
        if not self._finished:
            self._con.close()

    def _require_run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("load() must come first")
        return self._run
