"""The DuckDB data plane: decisions joined onto line items and split in exact integer SQL.

Amounts become integer units of 1e-10 (HUGEINT) for the split, because DuckDB divides
DECIMALs in floating point. ``floor(a * w / W)`` is computed as ``(a // W) * w +
(a % W) * w // W`` so intermediates stay below ``W * w`` (the kernel keeps ``W`` ≤ 1e18).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from chargeback_engine.engine.dataplane import RunInfo
from chargeback_engine.errors import InputError
from chargeback_engine.ledger import LEDGER_SCHEMA

_TO_MONEY = "CAST({} AS DECIMAL(38,0)) * CAST(0.0000000001 AS DECIMAL(11,10))"
_LEDGER_ORDER = "stage, source_id, source_row, period, cost_center, from_cost_center NULLS FIRST, amount"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _split_sql(parts: str, partition: str) -> str:
    """Largest-remainder split of ``parts.units`` by ``splits`` weights, as in ``money.split``.

    ``parts`` must have ``decision_id`` and ``units``; the result adds ``cost_center``,
    the split ``units_out`` and the split's descriptive columns. Single-share decisions
    skip the window.
    """
    return f"""
    SELECT p.* EXCLUDE (units), s.cost_center, s.rule_id, s.method, s.category, p.units AS units_out
    FROM {parts} p JOIN splits s USING (decision_id) WHERE s.n = 1
    UNION ALL BY NAME
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
    )
    """


class DuckDBPlane:
    """:class:`~chargeback_engine.engine.dataplane.DataPlane` on an in-process DuckDB."""

    def __init__(self, connection: duckdb.DuckDBPyConnection | None = None, threads: int | None = None):
        self._con = connection or duckdb.connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._run: RunInfo | None = None

    # -- loading ---------------------------------------------------------------------
    def load(self, records: pa.Table, run: RunInfo) -> int:
        self._run = run
        con = self._con
        con.register("src_arrow", records)
        cost = _ident(run.cost_column)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE src AS
            SELECT *, md5(x_SourceId || '#' || CAST(x_SourceRow AS VARCHAR)) AS record_id,
                   CAST({cost} * 10000000000 AS HUGEINT) AS units
            FROM src_arrow
        """)
        con.unregister("src_arrow")
        missing = next(iter(con.sql(f"SELECT x_SourceId, x_SourceRow FROM src WHERE {cost} IS NULL LIMIT 1").fetchall()), None)
        if missing:
            raise InputError(f"{missing[0]}: row {missing[1]}: column {run.cost_column} is empty")
        con.register("ledger_empty", LEDGER_SCHEMA.empty_table())
        con.execute("CREATE OR REPLACE TEMP TABLE ledger AS SELECT * FROM ledger_empty")
        con.unregister("ledger_empty")
        return con.sql("SELECT count(*) FROM src").fetchall()[0][0]

    def records(self) -> pa.Table:
        return self._con.sql("SELECT * EXCLUDE (record_id, units) FROM src").to_arrow_table()

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        if not columns:
            return pa.table({})
        cols = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        order = ", ".join(_ident(c) for c in columns)
        return self._con.sql(f"SELECT DISTINCT {cols} FROM src ORDER BY {order}").to_arrow_table()

    # -- stage 0 ---------------------------------------------------------------------
    def _register_splits(self, splits: pa.Table) -> None:
        self._con.register("splits_arrow", splits)
        self._con.execute("""
            CREATE OR REPLACE TEMP TABLE splits AS
            SELECT decision_id, cost_center, CAST(weight AS HUGEINT) AS weight, position, months, rule_id, method,
                   category, sum(CAST(weight AS HUGEINT)) OVER (PARTITION BY decision_id) AS total,
                   count(*) OVER (PARTITION BY decision_id) AS n
            FROM splits_arrow
        """)
        self._con.unregister("splits_arrow")

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
        months = "(SELECT DISTINCT decision_id, months FROM splits)"
        # One part per line, or one per month of an amortization schedule (even split, earlier months first).
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE parts AS
            WITH hit AS (
                SELECT r.record_id, r.x_SourceId, r.x_SourceRow, r.ChargePeriodStart, r.BillingAccountId,
                       r.SubAccountId, r.ServiceName, r.ServiceCategory, r.ResourceId, r.RegionId,
                       r.ChargeCategory, r.BillingCurrency, r.units, a.decision_id,
                       CASE WHEN m.months IS NULL THEN 1
                            WHEN m.months > 0 THEN m.months
                            WHEN r.ChargePeriodEnd IS NULL OR r.ChargePeriodStart IS NULL THEN 1
                            ELSE greatest(1, date_diff('month', date_trunc('month', r.ChargePeriodStart),
                                                       date_trunc('month', r.ChargePeriodEnd - INTERVAL 1 MICROSECOND)) + 1)
                       END AS n_parts,
                       m.months IS NOT NULL AS amortized
                FROM {hit} JOIN {months} m USING (decision_id)
            )
            SELECT * EXCLUDE (units, n_parts),
                   CASE WHEN amortized
                        THEN strftime(date_trunc('month', coalesce(ChargePeriodStart, TIMESTAMPTZ '{run.period.start}'))
                                      + to_months(CAST(i AS INTEGER)), '%Y-%m')
                        ELSE '{run.period}' END AS period,
                   i AS part_index,
                   sign(units) * (abs(units) // n_parts + CASE WHEN i < abs(units) % n_parts THEN 1 ELSE 0 END) AS units
            FROM hit, LATERAL (SELECT unnest(range(n_parts)) AS i)
        """)
        con.unregister("assignments")
        con.execute(f"""
            INSERT INTO ledger BY NAME
            SELECT ? AS run_id, record_id, x_SourceId AS source_id, x_SourceRow AS source_row, period,
                   ChargePeriodStart AS charge_period_start, BillingAccountId AS billing_account_id,
                   SubAccountId AS sub_account_id, ServiceName AS service_name, ServiceCategory AS service_category,
                   ResourceId AS resource_id, RegionId AS region_id, ChargeCategory AS charge_category,
                   cost_center, {_TO_MONEY.format('units_out')} AS amount, BillingCurrency AS currency,
                   0 AS stage, NULL AS from_cost_center,
                   CASE WHEN category = 'direct' AND ChargeCategory = 'Credit' THEN 'credit' ELSE category END AS category,
                   rule_id, method, decision_id, ? AS policy_version, ? AS policy_hash
            FROM ({_split_sql('parts', 'record_id, part_index')})
        """, [run.run_id, run.policy_version, run.policy_hash])
        con.execute("DROP TABLE parts")

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        run = self._require_run()
        extra = "".join(f", CAST(r.{_ident(c)} AS VARCHAR) AS {_ident(c)}" for c in columns)
        group = "".join(f", {i + 3}" for i in range(len(columns)))
        return self._con.sql(f"""
            SELECT l.cost_center, l.currency{extra}, sum(l.amount) AS amount
            FROM ledger l JOIN src r USING (record_id)
            WHERE l.stage = 0 AND l.period = ?
            GROUP BY 1, 2{group} ORDER BY ALL
        """, params=[str(run.period)]).to_arrow_table()

    # -- shared stages ---------------------------------------------------------------
    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        run = self._require_run()
        con = self._con
        self._register_splits(splits)
        decision_id = splits["decision_id"][0].as_py()
        con.execute("""
            CREATE OR REPLACE TEMP TABLE parts AS
            SELECT record_id, source_id, source_row, period, charge_period_start, billing_account_id, sub_account_id,
                   service_name, service_category, resource_id, region_id, charge_category, currency,
                   ? AS decision_id, CAST(sum(amount) * 10000000000 AS HUGEINT) AS units
            FROM ledger WHERE cost_center = ?
            GROUP BY ALL HAVING sum(amount) <> 0
        """, [decision_id, pool])
        common = """? AS run_id, record_id, source_id, source_row, period, charge_period_start, billing_account_id,
                    sub_account_id, service_name, service_category, resource_id, region_id, charge_category"""
        con.execute(f"""
            INSERT INTO ledger BY NAME
            SELECT {common}, ? AS stage, ? AS cost_center, ? AS from_cost_center,
                   {_TO_MONEY.format('-units')} AS amount, currency, 'shared' AS category,
                   s.rule_id, s.method, decision_id, ? AS policy_version, ? AS policy_hash
            FROM parts JOIN (SELECT DISTINCT decision_id, rule_id, method FROM splits) s USING (decision_id)
        """, [run.run_id, stage, pool, pool, run.policy_version, run.policy_hash])
        con.execute(f"""
            INSERT INTO ledger BY NAME
            SELECT {common}, ? AS stage, cost_center, ? AS from_cost_center,
                   {_TO_MONEY.format('units_out')} AS amount, currency, 'shared' AS category,
                   rule_id, method, decision_id, ? AS policy_version, ? AS policy_hash
            FROM ({_split_sql('parts', 'record_id, period')})
        """, [run.run_id, stage, pool, run.policy_version, run.policy_hash])
        con.execute("DROP TABLE parts")

    # -- results ---------------------------------------------------------------------
    def balances(self) -> pa.Table:
        run = self._require_run()
        cost = _ident(run.cost_column)
        return self._con.sql(f"""
            WITH i AS (
                SELECT BillingCurrency AS currency, BillingAccountId AS billing_account_id,
                       strftime(ChargePeriodStart, '%Y-%m') AS period, sum({cost}) AS input
                FROM src GROUP BY ALL
            ), l AS (
                SELECT currency, billing_account_id, strftime(charge_period_start, '%Y-%m') AS period, sum(amount) AS ledger
                FROM ledger GROUP BY ALL
            )
            SELECT currency, billing_account_id, period, coalesce(input, 0) AS input, coalesce(ledger, 0) AS ledger
            FROM i FULL OUTER JOIN l USING (currency, billing_account_id, period)
            ORDER BY ALL
        """).to_arrow_table()

    def ledger(self) -> pa.Table:
        table = self._con.sql(f"SELECT * FROM ledger ORDER BY {_LEDGER_ORDER}").to_arrow_table()
        return table.cast(LEDGER_SCHEMA)

    def close(self) -> None:
        self._con.close()

    def _require_run(self) -> RunInfo:
        if self._run is None:
            raise RuntimeError("load() must come first")
        return self._run
