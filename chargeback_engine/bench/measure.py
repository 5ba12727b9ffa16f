"""Measure the pipeline on synthetic months: rows per second and peak memory.

Each measurement runs in a fresh Python process (``python -m chargeback_engine.bench.measure``),
so one size's peak memory never hides in another's, and the figure includes everything
that process needed: the interpreter, pyarrow and DuckDB, the input table and the outputs.
The synthetic input is generated once per shape and cached; generating it is not timed.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from chargeback_engine.bench.synthetic import Shape, write_parquet

#: Bump when the generator's output changes, so cached months are regenerated.
GENERATOR_VERSION = 1

#: 30 rules and two shared stages using every built-in method, written for the synthetic month.
BENCH_POLICY = Path(__file__).with_name("bench-policy.yaml")
BENCH_PERIOD = str(Shape.period)  # the synthetic month's default period


@dataclass(frozen=True)
class Step:
    """One step of a run (as ``Engine.run`` reports its progress): where time and memory go."""

    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int  # the process's peak so far, at the end of this step


@dataclass(frozen=True)
class Measurement:
    stage: str
    rows: int
    seconds: float  # wall clock, from reading the input to the last output written
    cpu_seconds: float  # user + system, all threads; steadier than wall time on a busy machine
    peak_rss_bytes: int
    steps: tuple[Step, ...] = ()

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    @property
    def peak_mb_per_million_rows(self) -> float:
        return self.peak_rss_bytes / 2**20 / (self.rows / 1e6)

    def phases(self) -> tuple[Step, Step]:
        """The steps summed into two phases: allocating (collect to check, the ledger
        complete and conserved) and writing the outputs, which can cost more than the first."""

        def summed(name: str, steps: list[Step]) -> Step:
            return Step(
                name,
                sum(s.seconds for s in steps),
                sum(s.cpu_seconds for s in steps),
                max((s.peak_rss_bytes for s in steps), default=0),
            )

        writing = [s for s in self.steps if s.name.startswith("write ")]
        return (summed("allocating", [s for s in self.steps if s not in writing]), summed("writing outputs", writing))


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "chargeback-bench"


def synthetic_month(rows: int, cache_dir: Path | None = None) -> Path:
    """The cached benchmark month of ``rows`` lines, generated on first use."""
    shape = Shape(rows=rows)
    path = (cache_dir or default_cache_dir()) / f"focus-{rows}-seed{shape.seed}-v{GENERATOR_VERSION}.parquet"
    return path if path.exists() else write_parquet(shape, path)


def run_benchmark(stage: str, sizes: Sequence[int], cache_dir: Path | None = None) -> list[Measurement]:
    """Measure ``stage`` (a name in :data:`STAGES`) once per size, each in its own process."""
    if stage not in STAGES:
        raise ValueError(f"unknown benchmark stage {stage!r}; known: {', '.join(STAGES)}")
    results = []
    for rows in sizes:
        month = synthetic_month(rows, cache_dir)
        with tempfile.TemporaryDirectory(prefix="chargeback-bench-out-") as out:
            completed = subprocess.run(
                [sys.executable, "-m", "chargeback_engine.bench.measure", stage, str(month), out],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
        measured = json.loads(completed.stdout.strip().splitlines()[-1])
        results.append(Measurement(**{**measured, "steps": tuple(Step(**s) for s in measured["steps"])}))
    return results


class _StepClock:
    """``Engine.run``'s progress callback that times each step (until the next one starts)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._current: tuple[str, float, float] | None = None

    def __call__(self, name: str | None) -> None:
        now, cpu = time.perf_counter(), _cpu_seconds()
        if self._current is not None:
            started_name, started, started_cpu = self._current
            self.steps.append(Step(started_name, now - started, cpu - started_cpu, _peak_rss_bytes()))
        self._current = (name, now, cpu) if name is not None else None


def _collect(month: Path, out: Path, clock: _StepClock) -> int:
    from chargeback_engine.collectors.focus_files import read_focus_file

    return int(read_focus_file(str(month)).table.num_rows)


def _engine(month: Path, out: Path, clock: _StepClock) -> int:
    """The full pipeline through the public API: collect, decide, allocate, audit, write."""
    from chargeback_engine import Engine

    result = Engine(BENCH_POLICY).run([str(month)], BENCH_PERIOD, out=out, progress=clock)
    clock(None)
    return result.input_rows


#: What each stage does with the month; each returns the number of input rows it handled.
STAGES: dict[str, Callable[[Path, Path, _StepClock], int]] = {
    "collect": _collect,
    "engine": _engine,
}

#: Imported before the clock starts, so the figures do not include import time.
_WARM_UP = ("pyarrow.parquet", "duckdb", "chargeback_engine.collectors.focus_files", "chargeback_engine")


def _measure_here(stage: str, month: Path, out: Path) -> Measurement:
    for module in _WARM_UP:
        importlib.import_module(module)
    from chargeback_engine.engine.memory import use_jemalloc_pool

    use_jemalloc_pool()  # as the CLI does
    cpu_before, clock = _cpu_seconds(), _StepClock()
    started = time.perf_counter()
    rows = STAGES[stage](month, out, clock)
    seconds = time.perf_counter() - started
    return Measurement(stage, rows, seconds, _cpu_seconds() - cpu_before, _peak_rss_bytes(), tuple(clock.steps))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


if __name__ == "__main__":
    stage_name, month_path, out_dir = sys.argv[1:4]
    print(json.dumps(asdict(_measure_here(stage_name, Path(month_path), Path(out_dir)))))
