"""Parity: Spark and DuckDB produce identical ledgers, decisions and written outputs.

The seeded month is small enough for CI on two cores (``CHARGEBACK_SPARK_PARITY_ROWS``,
default 5,000 lines; 50,000 took over 12 minutes on the 2-core machine); ``chargeback bench spark`` runs the same comparison at 1M and 10M.
"""

from __future__ import annotations

import os
from decimal import Decimal, localcontext
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from chargeback_engine.bench.spark_vs_duckdb import bench_spec
from chargeback_engine.bench.synthetic import Shape, write_parquet
from chargeback_engine.cli import main
from chargeback_engine.engine.result import RunResult
from chargeback_engine.engine.runner import Engine
from chargeback_engine.errors import ConservationError
from tests.engine.helpers import line_items, make_policy

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MONTH = ROOT / "policies" / "data" / "acme-focus-2026-10.csv"
EXAMPLE_POLICIES = sorted(p for p in (ROOT / "policies").glob("*.yaml") if not p.stem.endswith("_test"))
ROWS = int(os.environ.get("CHARGEBACK_SPARK_PARITY_ROWS", "5000"))

UNIT = "0.0000000001"
EDGE_AMOUNTS = [
    "0",
    UNIT,
    "-" + UNIT,
    "0.01",
    "-0.01",
    "1",
    "0.0000000007",
    "12345678.9999999999",
    "-12345678.9999999999",
    "999999999999999.9999999999",
    "-3.3333333333",
    "1000000",
]


def assert_same_outputs(duck: RunResult, spark: RunResult) -> None:
    assert spark.run_id == duck.run_id
    assert spark.ledger.schema == duck.ledger.schema
    assert spark.ledger.num_rows == duck.ledger.num_rows
    assert spark.ledger.equals(duck.ledger), "ledgers differ"
    assert spark.decisions.equals(duck.decisions), "decisions differ"
    for mine, theirs in zip(spark.outputs, duck.outputs, strict=True):
        assert mine.name == theirs.name
        assert mine.read_bytes() == theirs.read_bytes(), f"{mine.name} differs"


def run_both(policy, inputs, period, tmp_path: Path, plugins, spark_plane):  # type: ignore[no-untyped-def]
    duck = Engine(policy, plugins).run(inputs, period, out=tmp_path / "duckdb")
    spark = Engine(policy, plugins, plane=spark_plane).run(inputs, period, out=tmp_path / "spark")
    return duck, spark


@pytest.fixture(scope="module")
def seeded_month(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    shape = Shape(rows=ROWS, resources=max(100, ROWS // 20), accounts=40)
    return write_parquet(shape, tmp_path_factory.mktemp("month") / "focus-2026-10.parquet")


def test_seeded_month_has_identical_ledgers(seeded_month, tmp_path, plugins, spark_plane) -> None:  # type: ignore[no-untyped-def]
    policy = make_policy(bench_spec())
    duck, spark = run_both(policy, [seeded_month], "2026-10", tmp_path, plugins, spark_plane)
    assert_same_outputs(duck, spark)
    # Every method, both stages, amortization into later periods and the unallocated bucket ran.
    methods = set(spark.ledger["method"].to_pylist())
    assert methods >= {"amortized", "direct", "tag", "tiered", "proportional", "even"}
    assert set(spark.ledger["stage"].to_pylist()) == {0, 1, 2}
    assert spark.schedule.num_rows > 0


def every_method_spec() -> dict:
    centers = [f"C{i:02d}" for i in range(7)]
    return {
        "cost_centers": [{"id": c} for c in centers] + [{"id": "POOL", "shared": True}],
        "drivers": {
            "usage": {
                "inline": [
                    {"period": "2026-10", "cost_center": c, "quantity": q}
                    for c, q in zip(centers, [0, 1, 2, 7, 1000, 0, 3], strict=True)
                ]
            }
        },
        "rules": [
            {"id": f"r-{service}", "priority": 100 - i, "when": {"ServiceName": service}, "allocate": allocate}
            for i, (service, allocate) in enumerate(
                [
                    ("direct", {"method": "direct", "cost_center": centers[-1]}),
                    ("tag", {"method": "tag", "keys": ["team", "project"], "fallback": centers[0]}),
                    ("driver", {"method": "proportional", "driver": "usage", "fallback": "even"}),
                    (
                        "direct-cost",
                        {"method": "proportional", "basis": "direct-cost", "among": centers[:3], "fallback": "even"},
                    ),
                    ("fixed", {"method": "fixed", "splits": {"C00": "0.3333", "C01": "0.3333", "C02": "0.3334"}}),
                    ("even", {"method": "even"}),
                    (
                        "tiered",
                        {
                            "method": "tiered",
                            "by": "tags.tier",
                            "tiers": {
                                "gold": {"method": "direct", "cost_center": centers[0]},
                                "silver": {"method": "proportional", "driver": "usage", "fallback": "even"},
                            },
                            "default": {"method": "even", "among": centers[2:5]},
                        },
                    ),
                    (
                        "amortized-3",
                        {"method": "amortized", "months": 3, "then": {"method": "even", "among": centers[:3]}},
                    ),
                    (
                        "amortized-term",
                        {
                            "method": "amortized",
                            "months": "commitment-term",
                            "then": {"method": "proportional", "basis": "direct-cost", "fallback": "even"},
                        },
                    ),
                    ("pool", {"method": "direct", "cost_center": "POOL"}),
                ]
            )
        ],
        "stages": [
            {"pool": "POOL", "allocate": {"method": "proportional", "basis": "direct-cost", "fallback": "even"}}
        ],
    }


def edge_items() -> list[dict]:
    services = [
        "direct",
        "tag",
        "driver",
        "direct-cost",
        "fixed",
        "even",
        "tiered",
        "amortized-3",
        "amortized-term",
        "pool",
        "nothing-matches",
    ]
    tags = [{}, {"Team": "C01"}, {"project": "C02", "tier": "gold"}, {"tier": "silver"}, {" team ": "nobody"}]
    ends = ["2026-11-01T00:00:00Z", "2027-10-01T00:00:00Z", "2026-10-05T00:00:00Z"]
    items = []
    for i, (service, amount) in enumerate((s, a) for s in services for a in EDGE_AMOUNTS):
        items.append(
            {
                "ServiceName": service,
                "EffectiveCost": amount,
                "Tags": tags[i % len(tags)],
                "ChargePeriodEnd": ends[i % len(ends)],
                "ChargeCategory": "Credit" if amount.startswith("-") else "Usage",
            }
        )
    return items


def test_every_method_and_edge_amount(tmp_path, plugins, spark_plane) -> None:  # type: ignore[no-untyped-def]
    policy = make_policy(every_method_spec())
    items = edge_items()
    duck, spark = run_both(policy, [line_items(items)], "2026-10", tmp_path, plugins, spark_plane)
    assert_same_outputs(duck, spark)
    per_line: dict[int, Decimal] = {}
    with localcontext() as wide:
        wide.prec = 80  # 18 digits after the point: the test's own sums must not round at 28 digits
        for row in spark.ledger.to_pylist():
            per_line[row["source_row"]] = per_line.get(row["source_row"], Decimal(0)) + row["amount"]
    assert per_line == {n: Decimal(item["EffectiveCost"]) for n, item in enumerate(items, start=1)}


def test_conservation_check_runs_on_spark(plugins, spark) -> None:  # type: ignore[no-untyped-def]
    """A plane that leaves a key unallocated fails the same check the DuckDB plane goes through."""
    from chargeback_engine.engine.spark import SparkPlane

    class ForgetfulPlane(SparkPlane):
        def allocate(self, assignments: pa.Table, splits: pa.Table) -> None:
            super().allocate(assignments.slice(1), splits)

    policy = make_policy(every_method_spec())
    with pytest.raises(ConservationError, match="money is not conserved"):
        Engine(policy, plugins, plane=lambda: ForgetfulPlane(spark)).run([line_items(edge_items())], "2026-10")


@pytest.mark.parametrize("policy_file", EXAMPLE_POLICIES, ids=lambda p: p.name)
def test_example_policies_through_the_cli(policy_file, tmp_path, spark) -> None:  # type: ignore[no-untyped-def]
    """``chargeback run --engine spark`` writes the very bytes ``--engine duckdb`` writes."""
    outputs = {}
    for engine in ("duckdb", "spark"):
        out = tmp_path / engine
        args = [
            "run",
            "--policy",
            str(policy_file),
            "--input",
            str(SAMPLE_MONTH),
            "--period",
            "2026-10",
            "--out",
            str(out),
            "--engine",
            engine,
        ] + (["--spark-master", "local[2]"] if engine == "spark" else [])
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs[engine] = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    assert "manifest.json" in outputs["spark"]
    assert outputs["spark"] == outputs["duckdb"]


def test_there_are_example_policies() -> None:
    assert EXAMPLE_POLICIES, "policies/*.yaml: the parity tests need the example policies"
