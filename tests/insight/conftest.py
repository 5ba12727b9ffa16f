"""Shared fixtures: the seeded six-month sample, written once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chargeback_engine.insight import Insight, InsightStore, read_budgets, write_sample


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("sample") / "runs")


@pytest.fixture(scope="session")
def insight(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Insight:
    """The sample with its budgets and metrics; CC-1001 and CC-1003 are in chargeback mode."""
    db = tmp_path_factory.mktemp("db") / "insight.db"
    opened = Insight.open(
        sample_dir,
        db=f"sqlite:///{db}",
        metrics=sample_dir / "metrics.csv",
        chargeback_cost_centers=frozenset({"CC-1001", "CC-1003"}),
    )
    opened.store.set_budgets(read_budgets(sample_dir / "budgets.csv"))
    return opened


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InsightStore]:
    """A fresh insight store on SQLite and, where CI provides it, on its own PostgreSQL database."""
    if request.param == "sqlite":
        yield InsightStore(f"sqlite:///{tmp_path / 'store.db'}")
        return
    url = os.environ.get("CHARGEBACK_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CHARGEBACK_TEST_POSTGRES_URL is not set")
    name = f"insight_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(sa.engine.make_url(url).set(database=name))
    try:
        yield InsightStore(engine=engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()
