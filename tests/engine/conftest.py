"""Engine test fixtures: one plugin registry and one DuckDB connection per test session."""

from __future__ import annotations

import duckdb
import pytest

from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager


@pytest.fixture(scope="session")
def registry() -> Registry:
    return build_registry(get_plugin_manager())


@pytest.fixture(scope="session")
def connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    yield con
    con.close()


@pytest.fixture(scope="session")
def plane_factory(connection):  # type: ignore[no-untyped-def]
    """Planes that reuse the session's connection, so property tests stay fast."""
    return lambda: DuckDBPlane(connection)
