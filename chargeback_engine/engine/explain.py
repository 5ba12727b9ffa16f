"""Explain a run's outputs: from a cost-center total down to rules and source lines.

Reads only what ``chargeback run`` wrote (``allocations.parquet``, ``decisions.parquet``),
so an auditor can explain a month long after it ran.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from chargeback_engine.engine.store import connect
from chargeback_engine.errors import InputError

#: Source lines listed under each rule when explaining a cost center.
TOP_LINES = 5


def _connect(out: Path) -> duckdb.DuckDBPyConnection:
    for name in ("allocations.parquet", "decisions.parquet"):
        if not (out / name).exists():
            raise InputError(f"{out / name}: not found; is {out} the --out directory of a run?")
    con = connect()
    con.execute(f"CREATE VIEW ledger AS SELECT * FROM read_parquet('{_q(out / 'allocations.parquet')}')")
    con.execute(f"CREATE VIEW decisions AS SELECT * FROM read_parquet('{_q(out / 'decisions.parquet')}')")
    return con


def _q(path: Path) -> str:
    return str(path).replace("'", "''")


def explain_record(out: str | Path, record_id: str) -> str:
    """Every ledger row of one source line, each with its stage, decision, rule and reason."""
    con = _connect(Path(out))
    rows = con.sql("""
        SELECT l.source_id, l.source_row, l.service_name, l.resource_id, l.stage, l.cost_center, l.from_cost_center,
               l.amount, l.currency, l.category, l.decision_id, coalesce(l.rule_id, '(none)'), coalesce(d.rule_location, '-'),
               l.method, d.shares, d.reason, l.period
        FROM ledger l LEFT JOIN decisions d USING (decision_id)
        WHERE l.record_id = ? ORDER BY l.stage, l.cost_center, l.from_cost_center NULLS FIRST
    """, params=[record_id]).fetchall()
    if not rows:
        raise InputError(f"record {record_id!r} is not in {out}")
    source_id, source_row, service, resource = rows[0][:4]
    lines = [f"record {record_id}: {source_id} row {source_row} (service {service or '-'}, resource {resource or '-'})"]
    for (*_, stage, cc, from_cc, amount, currency, category, decision, rule, location, method, shares, reason, period) in rows:
        moved = f" from {from_cc}" if from_cc and from_cc != cc else ""
        lines.append(f"  stage {stage}  {cc:<16} {amount:>22} {currency} {period}  {category}{moved}")
        lines.append(f"    decision {decision}: rule {rule} at {location}, method {method}, shares {shares}")
        lines.append(f"    reason: {reason}")
    return "\n".join(lines)


def explain_cost_center(out: str | Path, cost_center: str) -> str:
    """A cost center's total, split by rule (with location and reasons), and its largest source lines."""
    con = _connect(Path(out))
    totals = con.sql("SELECT currency, sum(amount) FROM ledger WHERE cost_center = ? GROUP BY 1 ORDER BY 1",
                     params=[cost_center]).fetchall()
    if not totals:
        raise InputError(f"cost center {cost_center!r} has no ledger rows in {out}")
    lines = [f"cost center {cost_center}: " + ", ".join(f"{amount} {currency}" for currency, amount in totals)]
    by_rule = con.sql("""
        SELECT coalesce(l.rule_id, '(no rule)') AS rule, any_value(d.rule_location), l.stage, l.currency,
               sum(l.amount) AS amount, count(DISTINCT l.record_id) AS lines, list(DISTINCT d.reason ORDER BY d.reason)[1:3]
        FROM ledger l LEFT JOIN decisions d USING (decision_id)
        WHERE l.cost_center = ? GROUP BY 1, 3, 4 ORDER BY abs(sum(l.amount)) DESC, 1
    """, params=[cost_center]).fetchall()
    for rule, location, stage, currency, amount, count, reasons in by_rule:
        lines.append(f"  rule {rule} ({location or '-'}), stage {stage}: {amount} {currency} from {count} line(s)")
        lines.extend(f"    reason: {reason}" for reason in reasons)
        top = con.sql("""
            SELECT record_id, source_id, source_row, amount, decision_id FROM ledger
            WHERE cost_center = ? AND coalesce(rule_id, '(no rule)') = ? AND stage = ?
            ORDER BY abs(amount) DESC, source_id, source_row LIMIT ?
        """, params=[cost_center, rule, stage, TOP_LINES]).fetchall()
        for record, source_id, source_row, line_amount, decision in top:
            lines.append(f"    {source_id} row {source_row}: {line_amount} (record {record}, decision {decision})")
    return "\n".join(lines)
