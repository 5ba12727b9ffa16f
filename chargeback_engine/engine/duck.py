"""The DuckDB data plane: decisions joined onto line items and split in exact integer SQL.

Amounts become integer units of 1e-10 (HUGEINT) for the split, because DuckDB divides
DECIMALs in floating point. ``floor(a * w / W)`` is computed as ``(a // W) * w +
(a % W) * w // W`` so intermediates stay below ``W * w`` (the kernel keeps ``W`` ≤ 1e18).

The line items stay in Arrow (DuckDB scans them in place); the working ledger is narrow:
the line's position, integer units and the allocation. Descriptive columns, the record
hash and the run's stamps are joined on only when :meth:`DuckDBPlane.ledger` is read.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.engine.dataplane import RunInfo
from chargeback_engine.errors import InputError
from chargeback_engine.ledger import LEDGER_SCHEMA

#: Position of a line in the loaded table: the ledger's link back to it.
LINE = "_line"

_TO_MONEY = "CAST({} AS DECIMAL(38,0)) * CAST(0.0000000001 AS DECIMAL(11,10))"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _split_sql(parts: str, partition: str, splits: pa.Table) -> str:
    """Largest-remainder split of ``parts.units`` by ``splits`` weights, as in ``money.split``.

    ``parts`` must have ``decision_id`` and ``units``; the result adds ``cost_center``,
    the split ``units_out`` and the split's descriptive columns. Single-share decisions
    skip the window, and only the branches ``splits`` needs are generated (DuckDB's
    planning time grows with the query, and small runs are all planning).
    """
    shares = pc.value_counts(splits["decision_id"]).field("counts") if splits.num_rows else pa.array([], pa.int64())
    single = f"""
    SELECT p.* EXCLUDE (units), s.cost_center, s.rule_id, s.method, s.category, p.units AS units_out
    FROM {parts} p JOIN splits s USING (decision_id) WHERE s.n = 1"""
    multi = f"""
    SELECT * EXCLUDE (units, position, fl, rem, a, lo, rnk),
           sign(units) * (fl + CASE WHEN rnk <= lo THEN 1 ELSE 0 END) AS units_out
    FROM (
        SELECT *, a - sum(fl) OVER w AS lo, row_number() OVER (w ORDER BY rem DESC, position) AS rnk
        FROM (
            SELECT p.*, s.cost_center, s.rule_id, s.method, s.category, s.position, abs(p.units) AS a,
                   (abs(p.units) // s.total) * s.weight + (abs(p.units) % s.total) * s.weight // s.total AS fl,
                   ((abs(p.units) % s.total) * s.weight) % s.total AS rem
            FROM {parts} p JOIN splits s USING (decision_id) WHERE s.n > 1
        )
        WINDOW w AS (PARTITION BY {partition})
    )"""
    branches = [sql for sql, wanted in ((single, pc.any(pc.equal(shares, 1)).as_py()),
                                         (multi, pc.any(pc.greater(shares, 1)).as_py())) if wanted]
    return "\n    UNION ALL BY NAME".join(branches or [single])


class DuckDBPlane:
    """:class:`~chargeback_engine.engine.dataplane.DataPlane` on an in-process DuckDB."""

    def __init__(self, connection: duckdb.DuckDBPyConnection | None = None, threads: int | None = None):
        self._owns_connection = connection is None
        self._con = connection or duckdb.connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._run: RunInfo | None = None
        self._records: pa.Table | None = None

    # -- loading ---------------------------------------------------------------------
    def load(self, records: pa.Table, run: RunInfo) -> int:
        self._run = run
        self._records = records
        con = self._con
        con.register("src_arrow", records.append_column(LINE, pa.array(range(records.num_rows), pa.int64())))
        cost = _ident(run.cost_column)
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW src AS
            SELECT *, CAST({cost} * 10000000000 AS HUGEINT) AS units FROM src_arrow
        """)
        missing = con.sql(f"SELECT x_SourceId, x_SourceRow FROM src_arrow WHERE {cost} IS NULL LIMIT 1").fetchall()
        if missing:
            raise InputError(f"{missing[0][0]}: row {missing[0][1]}: column {run.cost_column} is empty")
        con.execute("""
            CREATE OR REPLACE TEMP TABLE ledger (
                line BIGINT, period VARCHAR, cost_center VARCHAR, from_cost_center VARCHAR, units HUGEINT,
                stage INTEGER, category VARCHAR, rule_id VARCHAR, method VARCHAR, decision_id VARCHAR)
        """)
        return records.num_rows

    def records(self) -> pa.Table:
        if self._records is None:
            raise RuntimeError("load() must come first")
        return self._records

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        if not columns:
            return pa.table({})
        cols = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        order = ", ".join(_ident(c) for c in columns)
        return self._con.sql(f"SELECT DISTINCT {cols} FROM src_arrow ORDER BY {order}").to_arrow_table()

    # -- stage 0 ---------------------------------------------------------------------
    def _register_splits(self, splits: pa.Table) -> None:
        """Expose ``splits`` with each decision's total weight and share count (a view, no copy)."""
        self._con.register("splits_arrow", splits)
        self._con.execute("""
            CREATE OR REPLACE TEMP VIEW splits AS
            SELECT * REPLACE (CAST(weight AS HUGEINT) AS weight),
                   sum(CAST(weight AS HUGEINT)) OVER (PARTITION BY decision_id) AS total,
                   count(*) OVER (PARTITION BY decision_id) AS n
            FROM splits_arrow
        """)

    def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
        run = self._require_run()
        con = self._con
        self._register_splits(splits)
        key_columns = [c for c in assignments.column_names if c != "decision_id"]
        con.register("assignments", assignments)
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
                SELECT line, ChargeCategory, decision_id,
                       strftime(date_trunc('month', coalesce(ChargePeriodStart, TIMESTAMPTZ '{run.period.start}'))
                                + to_months(CAST(i AS INTEGER)), '%Y-%m') AS period,
                       i AS part_index,
                       sign(units) * (abs(units) // n_parts + CASE WHEN i < abs(units) % n_parts THEN 1 ELSE 0 END) AS units
                FROM hit, LATERAL (SELECT unnest(range(n_parts)) AS i) WHERE months IS NOT NULL""" if amortized else ""
        con.execute(f"""
            INSERT INTO ledger BY NAME
            WITH hit AS MATERIALIZED (
                SELECT r.{LINE} AS line, r.ChargePeriodStart, r.ChargeCategory, r.units, a.decision_id, m.months {n_parts}
                FROM {hit} JOIN (SELECT DISTINCT decision_id, months FROM splits) m USING (decision_id)
            ), parts AS MATERIALIZED (
                SELECT line, ChargeCategory, decision_id, units, '{run.period}' AS period, 0 AS part_index
                FROM hit WHERE months IS NULL {schedule}
            )
            SELECT line, period, cost_center, units_out AS units, 0 AS stage,
                   CASE WHEN category = 'direct' AND ChargeCategory = 'Credit' THEN 'credit' ELSE category END AS category,
                   rule_id, method, decision_id
            FROM ({_split_sql('parts', 'line, part_index', splits)})
        """)
        con.unregister("assignments")

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        run = self._require_run()
        extra = "".join(f", CAST(r.{_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        group = "".join(f", {i + 3}" for i in range(len(columns)))
        return self._con.sql(f"""
            SELECT l.cost_center, r.BillingCurrency AS currency{extra}, {_TO_MONEY.format('sum(l.units)')} AS amount
            FROM ledger l JOIN src_arrow r ON r.{LINE} = l.line
            WHERE l.stage = 0 AND l.period = ?
            GROUP BY 1, 2{group} ORDER BY ALL
        """, params=[str(run.period)]).to_arrow_table()

    # -- shared stages ---------------------------------------------------------------
    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        self._require_run()
        self._register_splits(splits)
        decision_id = splits["decision_id"][0].as_py()
        self._con.execute(f"""
            INSERT INTO ledger BY NAME
            WITH parts AS MATERIALIZED (
                SELECT line, period, ? AS decision_id, sum(units) AS units
                FROM ledger WHERE cost_center = ? GROUP BY line, period HAVING sum(units) <> 0
            )
            SELECT line, period, ? AS cost_center, ? AS from_cost_center, -units AS units, ? AS stage,
                   'shared' AS category, s.rule_id, s.method, decision_id
            FROM parts JOIN (SELECT DISTINCT decision_id, rule_id, method FROM splits) s USING (decision_id)
            UNION ALL BY NAME
            SELECT line, period, cost_center, ? AS from_cost_center, units_out AS units, ? AS stage,
                   'shared' AS category, rule_id, method, decision_id
            FROM ({_split_sql('parts', 'line, period', splits)})
        """, [decision_id, pool, pool, pool, stage, pool, stage])

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
                FROM ledger l JOIN src_arrow r ON r.{LINE} = l.line GROUP BY ALL
            )
            SELECT currency, billing_account_id, period, {_TO_MONEY.format('coalesce(input, 0)')} AS input,
                   {_TO_MONEY.format('coalesce(ledger, 0)')} AS ledger
            FROM i FULL OUTER JOIN l USING (currency, billing_account_id, period)
            ORDER BY ALL
        """).to_arrow_table()

    def ledger(self) -> pa.Table:
        run = self._require_run()
        table = self._con.sql(f"""
            SELECT ? AS run_id, md5(r.x_SourceId || '#' || CAST(r.x_SourceRow AS VARCHAR)) AS record_id,
                   r.x_SourceId AS source_id, r.x_SourceRow AS source_row, l.period,
                   r.ChargePeriodStart AS charge_period_start, r.BillingAccountId AS billing_account_id,
                   r.SubAccountId AS sub_account_id, r.ServiceName AS service_name,
                   r.ServiceCategory AS service_category, r.ResourceId AS resource_id, r.RegionId AS region_id,
                   r.ChargeCategory AS charge_category, l.cost_center, {_TO_MONEY.format('l.units')} AS amount,
                   r.BillingCurrency AS currency, l.stage, l.from_cost_center, l.category, l.rule_id, l.method,
                   l.decision_id, ? AS policy_version, ? AS policy_hash
            FROM ledger l JOIN src_arrow r ON r.{LINE} = l.line
            ORDER BY l.stage, l.line, l.period, l.cost_center, l.from_cost_center NULLS FIRST, l.units
        """, params=[run.run_id, run.policy_version, run.policy_hash]).to_arrow_table()
        return table.cast(LEDGER_SCHEMA)

    def close(self) -> None:
        """Close the connection if this plane opened it; drop the run's tables otherwise."""
        if self._owns_connection:
            self._con.close()
            return
        self._con.execute("DROP VIEW IF EXISTS splits; DROP VIEW IF EXISTS src; DROP TABLE IF EXISTS ledger")
        for name in ("src_arrow", "splits_arrow"):
            self._con.unregister(name)

    def _require_run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("load() must come first")
        return self._run
