"""The one engine-specific interface: where line items meet decisions.

The kernel (:mod:`chargeback_engine.engine.kernel`) compiles the policy's rules to one SQL
expression and resolves in Python once per distinct outcome; a :class:`DataPlane` picks the
first matching rule of every match key at once and applies the decisions to every line
item in bulk. DuckDB
implements it here (:mod:`chargeback_engine.engine.duck`); a Spark implementation only
has to honour this contract to run the same policy at scale.

Contract
--------
* Money is exact: amounts are ``DECIMAL(38, 18)`` (``money.LEDGER_SCALE``); splitting uses
  integer arithmetic on units of 1e-18 and the largest-remainder rule of
  :func:`chargeback_engine.money.split` (truncate toward minus infinity, leftover units to
  the largest remainders, ties in ``position`` order rotated by the line,
  :func:`~chargeback_engine.money.tie_order`; negative amounts split mirrored). Every
  source line is conserved.
* Amortized lines (``months`` not null in the splits) are first split evenly into that
  many monthly parts from the month of ``ChargePeriodStart`` (``months = 0``: the whole
  months from ChargePeriodStart to ChargePeriodEnd, at least one); parts earlier in the
  schedule win the tie-break. Each part is then split by the decision's weights.
* Nothing is a Python object per line item; every table crossing this interface is Arrow
  and small. The ledger never crosses it: :meth:`finish` hands over a
  :class:`~chargeback_engine.engine.store.RunStore` that reads it where the plane left it.
* Deterministic: ledger rows carry the load position of their line (``_line``), so
  :data:`~chargeback_engine.engine.store.LEDGER_ORDER` gives the same inputs in the same
  order byte-identical outputs on every plane.
* Key columns are compared as text (``CAST(... AS VARCHAR)``), nulls equal to nulls, as
  :meth:`distinct` returned them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from chargeback_engine.engine.store import RunStore
from chargeback_engine.periods import Period
from chargeback_engine.sql_common import Dialect

#: How one decision splits: one row per (decision, cost center). ``weight`` is an integer
#: (the kernel scales and reduces Decimal weights exactly); ``position`` orders the
#: tie-break (cost centers sorted by id). ``months`` null = not amortized, 0 = commitment term.
SPLIT_SCHEMA = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("cost_center", pa.string(), nullable=False),
        pa.field("weight", pa.decimal128(38, 0), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("months", pa.int32()),
        pa.field("rule_id", pa.string()),
        pa.field("method", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
    ]
)


#: The decisions a plane has applied, numbered from 1 (see :func:`number_decisions`).
#: Narrow ledger rows name their decision by number; ``pool`` is the shared cost center a
#: stage's decision redistributes (null at stage 0).
NUMBERED_DECISION_SCHEMA = pa.schema(
    [
        pa.field("decision", pa.int32(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("rule_id", pa.string()),
        pa.field("method", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("pool", pa.string()),
    ]
)


def number_decisions(splits: pa.Table, pool: str | None, first: int) -> tuple[pa.Table, pa.Array]:
    """The decisions in ``splits`` (``NUMBERED_DECISION_SCHEMA``), numbered from ``first`` in
    ``decision_id`` order, and the number of each split row's decision.

    Both planes number alike, so a ledger row is a few integers until an output widens it.
    """
    ids = pc.unique(splits["decision_id"]).sort()
    numbers = pa.array(range(first, first + len(ids)), pa.int32())
    first_rows = splits.take(pc.index_in(ids, value_set=splits["decision_id"]))
    decisions = pa.table(
        {
            "decision": numbers,
            **{c: first_rows[c] for c in ("decision_id", "rule_id", "method", "category")},
            "pool": pa.array([pool] * len(ids), pa.string()),
        }
    ).cast(NUMBERED_DECISION_SCHEMA)
    return decisions, pc.add(pc.index_in(splits["decision_id"], value_set=ids), first).cast(pa.int32())


@dataclass(frozen=True)
class RunInfo:
    """What every ledger row is stamped with."""

    run_id: str
    period: Period
    cost_column: str  # the FOCUS money column being allocated (EffectiveCost, BilledCost)
    policy_version: str
    policy_hash: str


class DataPlane(Protocol):
    """Applies decisions to line items in bulk and keeps the ledger (``LEDGER_SCHEMA``)."""

    def load(self, records: pa.Table, run: RunInfo) -> int:
        """Take the run's line items (``focus.COST_TABLE_SCHEMA``); return the row count.

        ``x_SourceId`` + ``x_SourceRow`` identify a line; ``record_id`` is a stable hash of them.
        """
        ...

    #: The SQL dialect of :meth:`choose`'s expression (see :mod:`chargeback_engine.policy.sql`).
    dialect: Dialect

    def quote(self, column: str) -> str:
        """``column`` as an identifier in the plane's SQL."""
        ...

    def choose(self, columns: Sequence[str], first_rule: str) -> pa.Table:
        """The distinct combinations of ``columns`` over the loaded lines (the match keys,
        as text, nulls kept), each with ``rule``: the value of ``first_rule``, a SQL
        expression over those columns (the index of the first matching rule, or null)."""
        ...

    def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
        """Stage 0: allocate every line whose key is in ``assignments``.

        ``assignments`` has the key columns (as returned by :meth:`distinct`, nulls match
        nulls) plus ``decision_id``; ``splits`` follows :data:`SPLIT_SCHEMA`. May be called
        more than once with disjoint keys (deferred decisions come second).
        """
        ...

    def direct_cost(self, columns: Sequence[str]) -> pa.Table:
        """Stage-0 cost of the run period per ``cost_center``, ``currency`` and ``columns``
        (FOCUS columns of the source lines), summed as ``amount``: the direct-cost basis."""
        ...

    def redistribute(self, stage: int, pool: str, splits: pa.Table) -> None:
        """Move the pool's balance, per source line and period, to the consumers in ``splits``
        (one decision): a negative row for the pool and positive rows for the consumers."""
        ...

    def pool_balances(self, pools: Sequence[str]) -> pa.Table:
        """What each of ``pools`` still holds: ``cost_center``, ``currency``, ``amount``, for
        the non-zero balances only."""
        ...

    def balances(self) -> pa.Table:
        """Conservation check input: per ``currency``, ``billing_account_id`` and ``period``
        (of the source line's charge), ``input`` Σ and ``ledger`` Σ."""
        ...

    def finish(self) -> RunStore:
        """Hand over the line items and the ledger (see :mod:`~chargeback_engine.engine.store`);
        the store owns them from now on, and :meth:`close` leaves them alone."""
        ...

    def close(self) -> None:
        """Release what the plane holds (after a failure, everything; after :meth:`finish`,
        nothing the store needs)."""
        ...
