"""Spark test fixtures: one local SparkSession for the whole test session (JVM start-up is slow)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from chargeback_engine.plugins import PluginManager, Registry, build_registry, get_plugin_manager

if shutil.which("java") is None:  # pragma: no cover - CI installs Java 17 in .ci/run
    pytest.fail("the Spark tests need Java 17 on PATH (apt-get install openjdk-17-jre-headless)", pytrace=False)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from chargeback_engine.engine.spark import spark_session

    session = spark_session(
        "local[2]", {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.driver.memory": "2g"}
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def plugins() -> PluginManager:
    """Every installed plugin: the components of the engines under test, and their observers."""
    return get_plugin_manager()


@pytest.fixture(scope="session")
def registry(plugins: PluginManager) -> Registry:
    return build_registry(plugins)


@pytest.fixture(scope="session")
def spark_plane(spark):  # type: ignore[no-untyped-def]
    """A data-plane factory on the session's SparkSession."""
    from chargeback_engine.engine.spark import SparkPlane

    return lambda: SparkPlane(spark)
