"""Engine test fixtures: one plugin registry, and single-threaded DuckDB planes."""

from __future__ import annotations

import pytest

from chargeback_engine.engine.duck import DuckDBPlane
from chargeback_engine.plugins import PluginManager, Registry, build_registry, get_plugin_manager


@pytest.fixture(scope="session")
def plugins() -> PluginManager:
    """Every installed plugin: the components of the engines under test, and their observers."""
    return get_plugin_manager()


@pytest.fixture(scope="session")
def registry(plugins: PluginManager) -> Registry:
    return build_registry(plugins)


@pytest.fixture(scope="session")
def plane_factory():  # type: ignore[no-untyped-def]
    """Single-threaded planes: the tables are tiny, and more threads only add overhead."""
    return lambda: DuckDBPlane(threads=1)
