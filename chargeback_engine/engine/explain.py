"""Explain a run's outputs: from a cost-center total down to rules and source lines.

Reads only what ``chargeback run`` wrote (``allocations.parquet``, ``decisions.parquet``),
so an auditor can explain a month long after it ran. The answers are data with exact
amounts; the CLI renders them for people or prints them as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from chargeback_engine.errors import InputError
from chargeback_engine.sql_common import connect, sql_text

#: Source lines listed under each rule when explaining a cost center.
TOP_LINES = 5


def _connect(out: Path) -> duckdb.DuckDBPyConnection:
    for name in ("allocations.parquet", "decisions.parquet"):
        if not (out / name).exists():
            raise InputError(f"{out / name}: not found; is {out} the --out directory of a run?")
    con = connect()
    con.execute(f"CREATE VIEW ledger AS SELECT * FROM read_parquet({sql_text(str(out / 'allocations.parquet'))})")
    con.execute(f"CREATE VIEW decisions AS SELECT * FROM read_parquet({sql_text(str(out / 'decisions.parquet'))})")
    return con


def explain_record(out: str | Path, record_id: str) -> dict[str, Any]:
    """Every ledger row of one source line, each with its stage, decision, rule, shares and reason."""
    con = _connect(Path(out))
    rows = con.sql(
        """
        SELECT l.source_id, l.source_row, l.service_name, l.resource_id, l.stage, l.cost_center, l.from_cost_center,
               l.amount, l.currency, l.category, l.decision_id, coalesce(l.rule_id, '(none)'), d.rule_location,
               l.method, d.shares, d.reason, l.period
        FROM ledger l LEFT JOIN decisions d USING (decision_id)
        WHERE l.record_id = ? ORDER BY l.stage, l.cost_center, l.from_cost_center NULLS FIRST
    """,
        params=[record_id],
    ).fetchall()
    if not rows:
        raise InputError(f"record {record_id!r} is not in {out}")
    source_id, source_row, service, resource = rows[0][:4]
    return {
        "record_id": record_id,
        "source_id": source_id,
        "source_row": source_row,
        "service": service,
        "resource": resource,
        "rows": [
            {
                "stage": stage,
                "cost_center": cc,
                "from_cost_center": from_cc,
                "amount": amount,
                "currency": currency,
                "category": category,
                "decision_id": decision,
                "rule": rule,
                "rule_location": location,
                "method": method,
                "shares": json.loads(shares) if shares else None,
                "reason": reason,
                "period": period,
            }
            for (
                *_,
                stage,
                cc,
                from_cc,
                amount,
                currency,
                category,
                decision,
                rule,
                location,
                method,
                shares,
                reason,
                period,
            ) in rows
        ],
    }


def explain_cost_center(out: str | Path, cost_center: str) -> dict[str, Any]:
    """A cost center's total, split by rule (with location and reasons), and its largest source lines."""
    con = _connect(Path(out))
    totals = con.sql(
        "SELECT currency, sum(amount) FROM ledger WHERE cost_center = ? GROUP BY 1 ORDER BY 1", params=[cost_center]
    ).fetchall()
    if not totals:
        raise InputError(f"cost center {cost_center!r} has no ledger rows in {out}")
    by_rule = con.sql(
        """
        SELECT coalesce(l.rule_id, '(no rule)') AS rule, any_value(d.rule_location), l.stage, l.currency,
               sum(l.amount) AS amount, count(DISTINCT l.record_id) AS lines, list(DISTINCT d.reason ORDER BY d.reason)[1:3]
        FROM ledger l LEFT JOIN decisions d USING (decision_id)
        WHERE l.cost_center = ? GROUP BY 1, 3, 4 ORDER BY abs(sum(l.amount)) DESC, 1
    """,
        params=[cost_center],
    ).fetchall()
    rules = []
    for rule, location, stage, currency, amount, count, reasons in by_rule:
        top = con.sql(
            """
            SELECT record_id, source_id, source_row, amount, decision_id FROM ledger
            WHERE cost_center = ? AND coalesce(rule_id, '(no rule)') = ? AND stage = ?
            ORDER BY abs(amount) DESC, source_id, source_row LIMIT ?
        """,
            params=[cost_center, rule, stage, TOP_LINES],
        ).fetchall()
        rules.append(
            {
                "rule": rule,
                "rule_location": location,
                "stage": stage,
                "currency": currency,
                "amount": amount,
                "lines": count,
                "reasons": list(reasons),
                "top_lines": [
                    {
                        "record_id": record,
                        "source_id": source_id,
                        "source_row": source_row,
                        "amount": line_amount,
                        "decision_id": decision,
                    }
                    for record, source_id, source_row, line_amount, decision in top
                ],
            }
        )
    return {"cost_center": cost_center, "totals": [{"currency": c, "amount": a} for c, a in totals], "rules": rules}
