"""``chargeback bench spark``: the same run on DuckDB and on Spark, timed, and compared.

Each plane runs in its own process on the same seeded month and the same policy, so peak
memory is that plane's alone: the process tree's resident set (for Spark, the Python
driver plus its local-mode JVM), sampled every 100 ms. Both runs write their outputs; the
benchmark fails unless every file has the same SHA-256 in both. Each run's outputs are
hashed and removed before the next run starts, so the disk holds one run's at a time.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargeback_engine.bench.synthetic import COST_CENTERS, TEAMS, Shape, write_parquet
from chargeback_engine.durable_files import file_sha256

if TYPE_CHECKING:
    from chargeback_engine.policy.policy_model import Policy

CONSUMERS = [cc for cc, name in COST_CENTERS if "shared" not in name]
#: Outputs written on request besides the defaults: the planes are compared on every file.
PARITY_EXPORTS = ("allocations-csv", "focus-allocated")


def bench_spec(cost_column: str = "BilledCost") -> dict[str, Any]:
    """A policy spec over the synthetic month's vocabulary that touches every built-in
    method, both kinds of stage basis, amortization and the unallocated bucket."""
    return {
        "cost_column": cost_column,
        "tags": {"normalize": {"keys": "lower", "strip": True}, "aliases": {"costcenter": "cost-center"}},
        "cost_centers": [{"id": cc, "shared": "shared" in name} for cc, name in COST_CENTERS],
        "drivers": {
            "storage-gb": {
                "inline": [
                    {"period": "2026-10", "cost_center": cc, "quantity": q}
                    for cc, q in zip(CONSUMERS, [5, 0, 13, 700, 1, 0, 3, 2, 9, 11], strict=True)
                ]
            }
        },
        "rules": [
            {
                "id": "reserved-instances",
                "priority": 100,
                "when": {"CommitmentDiscountType": "Reserved Instance"},
                "allocate": {
                    "method": "amortized",
                    "months": 12,
                    "then": {"method": "proportional", "basis": "direct-cost", "fallback": "even"},
                },
            },
            {
                "id": "support",
                "priority": 90,
                "when": {"ServiceName": "AWS Support"},
                "allocate": {"method": "amortized", "months": "commitment-term", "then": {"method": "even"}},
            },
            {
                "id": "credits",
                "priority": 80,
                "when": {"ChargeCategory": "Credit"},
                "allocate": {
                    "method": "proportional",
                    "basis": "direct-cost",
                    "among": CONSUMERS[:4],
                    "fallback": "even",
                },
            },
            {
                "id": "platform-shared",
                "priority": 70,
                "when": {"tags.shared": "true"},
                "allocate": {"method": "direct", "cost_center": "CC-9000"},
            },
            {
                "id": "storage",
                "priority": 60,
                "when": {"ServiceName": {"in": ["Amazon S3", "Amazon Elastic Block Store"]}},
                "allocate": {"method": "proportional", "driver": "storage-gb", "fallback": "even"},
            },
            {
                "id": "by-environment",
                "priority": 50,
                "when": {"ServiceName": {"in": ["Amazon EC2", "Amazon RDS"]}},
                "allocate": {
                    "method": "tiered",
                    "by": "tags.environment",
                    "tiers": {
                        "production": {
                            "method": "tag",
                            "keys": ["cost-center", "team"],
                            "map": dict(TEAMS),
                            "fallback": "CC-9001",
                        },
                        "staging": {
                            "method": "fixed",
                            "splits": {"CC-1001": "0.3333", "CC-1002": "0.3333", "CC-1003": "0.3334"},
                        },
                    },
                    "default": {"method": "even", "among": CONSUMERS[3:7]},
                },
            },
            {
                "id": "tagged",
                "priority": 40,
                "when": {"ServiceName": {"not_in": ["Amazon CloudWatch"]}},
                "allocate": {"method": "tag", "keys": ["cost-center", "team"], "map": dict(TEAMS)},
            },
            {
                "id": "observability",
                "priority": 30,
                "when": {"ServiceName": "Amazon CloudWatch", "tags.team": {"exists": True}},
                "allocate": {"method": "direct", "cost_center": "CC-9001"},
            },
        ],
        "stages": [
            {"pool": "CC-9000", "allocate": {"method": "proportional", "basis": "direct-cost", "fallback": "even"}},
            {"pool": "CC-9001", "allocate": {"method": "even", "among": CONSUMERS[:5]}},
        ],
    }


def bench_policy(cost_column: str = "BilledCost") -> Policy:
    from chargeback_engine.policy.build import build_policy
    from chargeback_engine.policy.policy_model import SourceLocation

    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "bench-spark", "version": "1", "effective": {"from": "2020-01-01"}},
        "spec": bench_spec(cost_column),
    }
    return build_policy(
        document, path="bench-spark.yaml", locate=lambda p: SourceLocation("bench-spark.yaml", len(p), 1)
    )


@dataclass(frozen=True)
class Measurement:
    engine: str
    rows: int
    ledger_rows: int
    seconds: float
    rows_per_second: float
    peak_mib: float


def _tree_rss_kib(pid: int) -> int:
    """Resident set of ``pid`` and all its descendants (Linux ``/proc``)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _run_one(engine: str, month: str, out: str, master: str, driver_memory: str, queue: Any) -> None:
    from chargeback_engine.engine.runner import Engine

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_kib(os.getpid()))

    plane: Any = None
    if engine == "spark":
        from chargeback_engine.engine.spark import SparkPlane, spark_session

        session = spark_session(master, {"spark.driver.memory": driver_memory, "spark.driver.maxResultSize": "0"})
        session.sparkContext.setLogLevel("ERROR")
        plane = functools.partial(SparkPlane, session)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = Engine(bench_policy(), plane=plane or "duckdb").run([month], "2026-10", out=out, export=PARITY_EXPORTS)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    rows = result.input_rows
    queue.put(Measurement(engine, rows, result.count(), seconds, rows / seconds, peak[0] / 1024))


def run(
    rows: int,
    workdir: Path,
    master: str = "local[2]",
    driver_memory: str = "8g",
    engines: tuple[str, ...] = ("duckdb", "spark"),
) -> list[Measurement]:
    """Generate (or reuse) the seeded month of ``rows`` lines and time each engine on it."""
    month = workdir / f"focus-{rows}-seed{Shape(rows=rows).seed}.parquet"
    if not month.exists():
        write_parquet(Shape(rows=rows), month)
    context = multiprocessing.get_context("spawn")
    results, hashes = [], []
    for engine in engines:
        out = workdir / f"out-{rows}-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        queue = context.Queue()
        process = context.Process(target=_run_one, args=(engine, str(month), str(out), master, driver_memory, queue))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"the {engine} run of {month} failed (exit code {process.exitcode})")
        results.append(queue.get())
        hashes.append((engine, {p.name: file_sha256(p) for p in sorted(out.iterdir()) if not p.name.startswith(".")}))
        shutil.rmtree(out)  # at 10M lines one run's outputs are tens of GB
    assert_identical(hashes)
    return results


def assert_identical(hashes: list[tuple[str, dict[str, str]]]) -> None:
    """Every engine wrote the same files with the same bytes (parity at benchmark scale):
    ``hashes`` holds each run's engine and its SHA-256 by file name."""
    (first, expected), *rest = hashes
    for engine, files in rest:
        if sorted(files) != sorted(expected):
            raise AssertionError(f"{engine} wrote other files than {first}: {sorted(files)} != {sorted(expected)}")
        differing = [name for name in expected if files[name] != expected[name]]
        if differing:
            raise AssertionError(f"{', '.join(differing)} differ between {first} and {engine}")
