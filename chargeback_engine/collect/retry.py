"""Retries: full-jitter exponential backoff within one deadline for a whole collection."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from chargeback_engine.errors import InputError
from chargeback_engine.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class Clock(Protocol):
    """Time as retries see it; tests pass a fake one so backoff is checked without waiting."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


#: A collector's ``deadline_seconds`` option: the whole collection's time budget for retries.
DEADLINE_SCHEMA = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 86400,
    "default": 900,
    "description": "Seconds the whole collection may spend, retries included; then it fails.",
}


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff that gives up at a deadline (and, if set, after
    ``max_attempts`` attempts of one call).

    A collector calls :meth:`begin` once per collection, so the deadline covers every call
    of it together: a collection that keeps failing ends within ``deadline`` seconds
    however many calls it makes. Without :meth:`begin` each call has its own deadline.
    A server's ``Retry-After`` is a floor on the wait, never shortened by the jitter.
    """

    deadline: float = 900.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    max_attempts: int | None = None
    started_at: float | None = None

    def begin(self, deadline: float | None = None, *, max_attempts: int | None = None) -> RetryPolicy:
        """This policy for one collection, starting now: ``deadline`` seconds shared by every call."""
        return replace(
            self,
            deadline=self.deadline if deadline is None else deadline,
            max_attempts=max_attempts or self.max_attempts,
            started_at=self.clock.monotonic(),
        )

    def call(self, operation: Callable[[], T], *, retry_after: Callable[[Exception], float | None], what: str) -> T:
        """Run ``operation``; ``retry_after(exc)`` says how long at least to wait, or None to give up."""
        started = self.clock.monotonic() if self.started_at is None else self.started_at
        if self.clock.monotonic() - started > self.deadline:
            raise InputError(f"{what}: not attempted, the collection's {self.deadline:g}s deadline has passed")
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                floor = retry_after(exc)
                if floor is None:
                    raise
                delay = max(floor, self.rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                attempt += 1
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    raise InputError(
                        f"{what}: still failing after {attempt} attempts (at most {self.max_attempts}): "
                        f"{type(exc).__name__}"
                    ) from exc
                if self.clock.monotonic() + delay - started > self.deadline:
                    raise InputError(
                        f"{what}: still failing after {attempt} attempts and the {self.deadline:g}s deadline: "
                        f"{type(exc).__name__}"
                    ) from exc
                log.warning(
                    "collector.retry",
                    what=what,
                    attempt=attempt,
                    wait_seconds=round(delay, 3),
                    error=type(exc).__name__,
                )
                self.clock.sleep(delay)
