"""How fast, and in how little memory, the policy reader rejects alias bombs.

A level-*n* bomb defines *n* anchors, each a list of nine aliases of the one before, so a
reader that expands aliases would build 9**n nodes. The hardened reader refuses the first
anchor and never expands anything; this benchmark measures what that refusal costs, and,
for scale, what reading the largest file the reader accepts costs.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from dataclasses import dataclass

from chargeback_engine.policy.yaml import MAX_BYTES, read_yaml_text

LEVELS = range(1, 10)
FAN_OUT = 9


def alias_bomb(level: int) -> str:
    """The YAML text of a level-``level`` alias bomb ("billion laughs")."""
    lines = [f"l1: &l1 [{', '.join(['lol'] * FAN_OUT)}]"]
    for n in range(2, level + 1):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * FAN_OUT)}]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BombResult:
    level: int
    size_bytes: int
    expanded_nodes: int  # what a naive reader would build
    rejected: bool
    median_ms: float
    peak_kib: float


def measure(level: int, repeat: int = 20) -> BombResult:
    """Median wall time over ``repeat`` runs, and the peak traced memory of one more (traced runs are slower)."""
    text = alias_bomb(level)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        document, _ = read_yaml_text(text, f"bomb-{level}.yaml")
        timings.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        document, _ = read_yaml_text(text, f"bomb-{level}.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return BombResult(
        level=level,
        size_bytes=len(text.encode("utf-8")),
        expanded_nodes=FAN_OUT**level,
        rejected=document is None,
        median_ms=statistics.median(timings) * 1000,
        peak_kib=peak / 1024,
    )


def largest_policy() -> str:
    """A valid-looking policy just under :data:`MAX_BYTES`, made of many small rules."""
    head = "apiVersion: chargeback/v1\nkind: AllocationPolicy\nspec:\n  rules:\n"
    rule = (
        "    - id: rule-{0}\n      priority: {0}\n      when: {{tags.team: team-{0}, ServiceName: {{in: [a, b]}}}}\n"
        "      allocate: {{method: direct, cost_center: CC-{0}}}\n"
    )
    parts, size, n = [head], len(head), 0
    while size + len(rule.format(n)) < MAX_BYTES:
        parts.append(rule.format(n))
        size += len(parts[-1])
        n += 1
    return "".join(parts)


@dataclass(frozen=True)
class ReadResult:
    size_bytes: int
    seconds: float
    kib_per_second: float
    peak_kib: float


def measure_largest() -> ReadResult:
    """Wall time of reading the largest accepted file, then its peak traced memory in a second read."""
    text = largest_policy()
    start = time.perf_counter()
    document, diagnostics = read_yaml_text(text, "largest.yaml")
    seconds = time.perf_counter() - start
    if document is None or diagnostics:
        raise AssertionError(f"the benchmark policy must read cleanly: {diagnostics[:1]}")
    tracemalloc.start()
    try:
        read_yaml_text(text, "largest.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = len(text.encode("utf-8"))
    return ReadResult(size, seconds, size / 1024 / seconds, peak / 1024)


def run(repeat: int = 20) -> list[BombResult]:
    return [measure(level, repeat) for level in LEVELS]
