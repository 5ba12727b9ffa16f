"""What insight keeps between runs: budgets, stored forecasts, and the alerts already sent.

SQLAlchemy Core over the cost database (the same URL rule as finance: ``--db``, then
``CHARGEBACK_DB``, then ``sqlite:///chargeback.db``), with the cost database tables' exact
``Money`` type. A sent alert is a row with a unique id per channel, claimed *before*
sending, so two processes can never both send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chargeback_engine.costdb.connection import database_url, missing_sqlite_file
from chargeback_engine.costdb.tables import Money
from chargeback_engine.insight.forecast import Forecast

metadata = sa.MetaData()

budgets = sa.Table(
    "insight_budgets",
    metadata,
    sa.Column("cost_center", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("amount", Money(), nullable=False),
)

forecasts = sa.Table(
    "insight_forecasts",
    metadata,
    sa.Column("cost_center", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("as_of", sa.Date, primary_key=True),
    sa.Column("actual_to_date", Money(), nullable=False),
    sa.Column("amount", Money(), nullable=False),
    sa.Column("lower", Money(), nullable=False),
    sa.Column("upper", Money(), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
)

sent_alerts = sa.Table(
    "insight_sent_alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)


class InsightStore:
    """Budgets, forecasts and sent alerts in one database."""

    def __init__(self, url: str | None = None, *, engine: sa.Engine | None = None, create: bool = True):
        """``create=False`` (read-only commands): a SQLite file that does not exist reads as empty and is not made."""
        if engine is None and not create and missing_sqlite_file(url):
            engine = sa.create_engine("sqlite://")
        self.engine = engine or sa.create_engine(database_url(url))
        metadata.create_all(self.engine)

    def set_budget(self, cost_center: str, period: str, amount: Decimal) -> None:
        self.set_budgets({(cost_center, period): amount})

    def set_budgets(self, items: Mapping[tuple[str, str], Decimal]) -> None:
        """Set or replace budgets, all in one transaction."""
        with self.engine.begin() as conn:
            for (cost_center, period), amount in sorted(items.items()):
                conn.execute(sa.delete(budgets).where(budgets.c.cost_center == cost_center, budgets.c.period == period))
                conn.execute(sa.insert(budgets).values(cost_center=cost_center, period=period, amount=amount))

    def budgets(self) -> dict[tuple[str, str], Decimal]:
        """Every budget as ``{(cost_center, period): amount}``."""
        with self.engine.connect() as conn:
            return {(r.cost_center, r.period): r.amount for r in conn.execute(sa.select(budgets))}

    def save_forecasts(self, items: Iterable[Forecast]) -> None:
        """Store forecasts; storing the same forecast again replaces it (same cost center, period, day)."""
        with self.engine.begin() as conn:
            for f in items:
                key = (
                    forecasts.c.cost_center == f.cost_center,
                    forecasts.c.period == f.period,
                    forecasts.c.as_of == f.as_of,
                )
                conn.execute(sa.delete(forecasts).where(*key))
                conn.execute(
                    sa.insert(forecasts).values(
                        cost_center=f.cost_center,
                        period=f.period,
                        as_of=f.as_of,
                        actual_to_date=f.actual_to_date,
                        amount=f.amount,
                        lower=f.lower,
                        upper=f.upper,
                        level=f.level,
                    )
                )

    def forecasts(self) -> list[Forecast]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(forecasts).order_by(forecasts.c.as_of, forecasts.c.cost_center, forecasts.c.period)
            )
            return [
                Forecast(r.cost_center, r.period, _date(r.as_of), r.actual_to_date, r.amount, r.lower, r.upper, r.level)
                for r in rows
            ]

    def claim_alert(self, alert_id: str, channel: str, period: str, kind: str, payload: str) -> bool:
        """Record that an alert is being sent on a channel; False if it was claimed before."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(sent_alerts).values(
                        alert_id=alert_id, channel=channel, period=period, kind=kind, payload=payload
                    )
                )
        except IntegrityError:
            return False
        return True

    def release_alert(self, alert_id: str, channel: str) -> None:
        """Forget a claim whose sending failed, so the next check tries again."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(sent_alerts).where(sent_alerts.c.alert_id == alert_id, sent_alerts.c.channel == channel)
            )

    def invoices(self, period: str, cost_center: str) -> list[dict[str, Any]]:
        """The issued invoices of a cost center for a period, when this database holds the finance books."""
        from chargeback_engine.costdb.tables import invoices

        if not sa.inspect(self.engine).has_table(invoices.name):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    invoices.c.invoice_id, invoices.c.currency, invoices.c.subtotal, invoices.c.markup, invoices.c.total
                )
                .where(invoices.c.period == period, invoices.c.cost_center == cost_center)
                .order_by(invoices.c.currency)
            )
            return [dict(r._mapping) for r in rows]

    def sent(self) -> list[dict[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(sent_alerts).order_by(sent_alerts.c.period, sent_alerts.c.alert_id, sent_alerts.c.channel)
            )
            return [dict(r._mapping) for r in rows]


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
