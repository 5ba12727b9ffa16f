"""``RunResult``: a finished, conserved run, and the manifest that describes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from chargeback_engine.engine.store import LINE, RunStore
from chargeback_engine.focus import COST_TABLE_SCHEMA
from chargeback_engine.ledger import LEDGER_SCHEMA
from chargeback_engine.money import LEDGER_QUANTUM, LEDGER_SCALE
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import Policy
from chargeback_engine.sql_common import sql_name, sql_text


@dataclass(frozen=True)
class InputInfo:
    """One input as the manifest lists it."""

    source_id: str
    sha256: str
    rows: int
    path: str | None = None
    version: str | None = None  # the collector's source version: changes when the provider restates
    details: Mapping[str, Any] = field(default_factory=dict)  # the collector's row counts, totals, paging


@dataclass(frozen=True)
class RunResult:
    """A finished, conserved run: its decisions, what went in, and a store that holds the
    line items and the ledger (stream them, or query them as SQL, through :attr:`store`;
    or read them as Arrow tables: :attr:`ledger`, :attr:`allocations`, :attr:`schedule`
    and :attr:`records`)."""

    run_id: str
    period: Period
    policy: Policy
    decisions: pa.Table
    inputs: tuple[InputInfo, ...]
    engine_version: str
    store: RunStore
    input_rows: int
    outputs: tuple[Path, ...] = field(default=())
    #: :meth:`summary` and :meth:`totals`, once computed: each is SQL over the whole ledger,
    #: asked for by the run's check, the outputs and the CLI. ``replace`` passes it on.
    _totals_memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def in_period_sql(self) -> str:
        """A SQL condition (for ``WHERE``) selecting the ledger rows charged to the run period."""
        return f"period = '{self.period}'"

    @property
    def later_sql(self) -> str:
        """A SQL condition (for ``WHERE``) selecting the amortization parts for later periods."""
        return f"period > '{self.period}'"

    # -- the ledger as Arrow, materialised on first use ----------------------------------
    @cached_property
    def ledger(self) -> pa.Table:
        """Every row, including amortization parts of later periods and carried parts."""
        return self.store.ledger().read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def allocations(self) -> pa.Table:
        """Ledger rows charged to the run period."""
        return self.store.ledger(self.in_period_sql).read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def schedule(self) -> pa.Table:
        """Amortization parts for later periods: what they will receive."""
        return self.store.ledger(self.later_sql).read_all().cast(LEDGER_SCHEMA)

    @cached_property
    def records(self) -> pa.Table:
        """The line items, in load order."""
        return self.store.table(f"SELECT * EXCLUDE ({LINE}) FROM records ORDER BY {LINE}", schema=COST_TABLE_SCHEMA)

    def summary_query(self) -> str:
        """cost_center, currency, amount for the run period, sorted; the unallocated bucket is
        always there (at zero in every currency, or in the policy's when nothing is charged)."""
        unallocated = sql_text(self.policy.unallocated)
        return f"""
            WITH totals AS (
                SELECT cost_center, currency, sum(amount) AS amount FROM ledger_amounts WHERE {self.in_period_sql} GROUP BY ALL
            ), currencies AS (
                SELECT DISTINCT currency FROM totals
                UNION SELECT {sql_text(self.policy.currency)} WHERE NOT EXISTS (SELECT 1 FROM totals)
            )
            SELECT * FROM totals
            UNION ALL
            SELECT {unallocated}, currency, CAST(0 AS DECIMAL(38,{LEDGER_SCALE})) FROM currencies c
            WHERE NOT EXISTS (SELECT 1 FROM totals t WHERE t.cost_center = {unallocated} AND t.currency = c.currency)
            ORDER BY cost_center, currency
        """

    def summary(self) -> list[tuple[str, str, Decimal]]:
        """(cost center, currency, amount) for the run period, the unallocated bucket included."""
        if "summary" not in self._totals_memo:
            self._totals_memo["summary"] = [
                (cc, currency, _exact(amount))
                for cc, currency, amount in self.store.sql(self.summary_query()).fetchall()
            ]
        return list(self._totals_memo["summary"])

    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: input, allocated to the run period, deferred to later periods, and
        carried in from earlier schedules (allocated + deferred = input + carried)."""
        if "totals" not in self._totals_memo:
            self._totals_memo["totals"] = self._query_totals()
        return {currency: dict(t) for currency, t in self._totals_memo["totals"].items()}

    def _query_totals(self) -> dict[str, dict[str, Decimal]]:
        cost = sql_name(self.policy.cost_column)
        rows = self.store.sql(f"""
            WITH i AS (SELECT BillingCurrency AS currency, sum({cost}) AS input FROM records GROUP BY ALL),
            l AS (
                SELECT currency,
                       sum(amount) FILTER ({self.in_period_sql}) AS allocated,
                       sum(amount) FILTER ({self.later_sql}) AS deferred,
                       sum(amount) FILTER (run_id <> {sql_text(self.run_id)}) AS carried
                FROM ledger_amounts GROUP BY ALL
            )
            SELECT coalesce(i.currency, l.currency), input, allocated, deferred, carried
            FROM i FULL OUTER JOIN l ON i.currency = l.currency ORDER BY 1
        """).fetchall()
        return {
            currency: {"input": _exact(i), "allocated": _exact(a), "deferred": _exact(d), "carried": _exact(c)}
            for currency, i, a, d, c in rows
        }

    def count(self, where: str = "TRUE") -> int:
        """Ledger rows matching ``where`` (SQL over :data:`~chargeback_engine.engine.store.AMOUNT_COLUMNS`)."""
        return int(self.store.scalar(f"SELECT count(*) FROM ledger_amounts WHERE {where}"))


def _exact(total: Decimal | None) -> Decimal:
    """A SQL total at the ledger's scale (a missing total is zero)."""
    with localcontext() as wide:
        wide.prec = 80  # totals of 1e18 and more have more than the default 28 digits
        return (Decimal(0) if total is None else Decimal(total)).quantize(LEDGER_QUANTUM)


def describe(result: RunResult) -> Mapping[str, Any]:
    """The manifest's content (without the outputs list), for exporters and the CLI."""
    return {
        "engine": {"name": "chargeback-engine", "version": result.engine_version},
        "run_id": result.run_id,
        "period": str(result.period),
        "policy": {
            "name": result.policy.name,
            "version": result.policy.version,
            "hash": result.policy.content_hash,
            "unallocated": result.policy.unallocated,
        },
        "inputs": [
            {
                "source_id": i.source_id,
                "path": i.path,
                "sha256": i.sha256,
                "rows": i.rows,
                **({"version": i.version, "details": dict(i.details)} if i.version else {}),
            }
            for i in result.inputs
        ],
        "rows": {
            "input": result.input_rows,
            "ledger": result.count(result.in_period_sql),
            "schedule": result.count(result.later_sql),
            "decisions": result.decisions.num_rows,
        },
        "totals": {c: {k: format(v, "f") for k, v in t.items()} for c, t in result.totals().items()},
    }
