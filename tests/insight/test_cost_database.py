"""Stored periods read from the finance cost database agree with the run outputs they came from."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from chargeback_engine.errors import InputError
from chargeback_engine.finance import FinanceSettings, close_period, ingest_run, open_database
from chargeback_engine.finance.runs import RunInput
from chargeback_engine.insight import Insight, read_run_directory
from chargeback_engine.insight.sources import read_cost_database
from chargeback_engine.insight.synthetic_series import SAMPLE_BUCKET, SAMPLE_POOL, SAMPLE_TEAMS
from chargeback_engine.periods import Period
from chargeback_engine.policy.policy_model import CostCenter

COST_CENTERS = (
    *(CostCenter(cc, cc, mode="chargeback" if cc in ("CC-1001", "CC-1003") else "showback") for cc in SAMPLE_TEAMS),
    CostCenter(SAMPLE_POOL, "Platform", shared=True),
)


def test_periods_from_the_cost_database(sample_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cost.db'}"
    engine = open_database(url)
    for period in ("2026-09", "2026-10"):
        ledger = pq.read_table(sample_dir / period / "allocations.parquet")
        ingest_run(
            engine,
            RunInput(
                Period.parse(period),
                ledger,
                COST_CENTERS,
                "sample",
                "sha256:sample",
                {"sample": "1"},
                unallocated=SAMPLE_BUCKET,
            ),
        )
    close_period(engine, "2026-09", FinanceSettings())
    engine.dispose()

    stored = read_cost_database(url)
    daily = read_run_directory(sample_dir).facts
    for period in (Period(2026, 9), Period(2026, 10)):
        assert stored.facts.by_cost_center(period) == daily.by_cost_center(period)
        assert stored.facts.by_coverage(period) == daily.by_coverage(period)
    assert stored.chargeback_cost_centers == {"CC-1001", "CC-1003"}
    chargeback_spend = sum(daily.by_cost_center(Period(2026, 9))[cc] for cc in ("CC-1001", "CC-1003"))
    assert set(stored.journaled) == {"2026-09"}  # October is not closed, so not journaled yet
    assert abs(stored.journaled["2026-09"] - chargeback_spend) < 0.01  # invoices round to the cent

    insight = Insight.open(None, db=url)
    assert insight.kpis(Period(2026, 9)).gl_recharge_rate_pct is not None
    assert insight.team("CC-1003", Period(2026, 10)).total.previous == daily.total(Period(2026, 9), "CC-1003")
    with pytest.raises(InputError, match="need daily cost"):
        insight.anomalies()


def test_an_empty_cost_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no cost database"):
        read_cost_database(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()  # reading never creates it
    open_database(f"sqlite:///{tmp_path / 'empty.db'}").dispose()
    with pytest.raises(InputError, match="no stored periods"):
        read_cost_database(f"sqlite:///{tmp_path / 'empty.db'}")
