"""Anomaly detection on daily cost, kept apart from the gates that decide what is worth an alert.

Detection asks "is today unusual for this series?". For each day it learns from the 60 days
before: a robust STL decomposition of log cost gives the weekly pattern, the median of the
last week's deseasonalised values gives the level (so one spike cannot drag it, and a level
shift is learnt within four days), and the robust spread of one-step-ahead errors over the
window gives the scale. The score is the day's deviation in those units. Working in log
space makes a +50% day equally unusual for a $50 and a $50,000 series.

Gating asks "is it worth a person's time?": a minimum absolute impact and a minimum percent
impact, applied afterwards, so tuning alerts never changes what was detected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from chargeback_engine.insight.extra import statsmodels
from chargeback_engine.money import estimate

WINDOW = 60
PERIOD = 7
THRESHOLD = 4.0
#: Days of recent history whose median is the expected level.
LEVEL_DAYS = 7
#: The weekly pattern is refitted weekly; the level and the score are recomputed daily.
REFIT_EVERY = 7
#: Deviations below 1% are never unusual, however quiet a series has been.
MIN_SCALE = 0.01


@dataclass(frozen=True)
class Score:
    index: int
    expected: float
    score: float


def score_series(values: Sequence[float], *, start: int = WINDOW, window: int = WINDOW) -> list[Score]:
    """Score every day from ``start`` on against the ``window`` days before it."""
    y = np.asarray(values, dtype=float)
    floor = max(float(np.median(y[y > 0])) * 0.01, 1e-6) if np.any(y > 0) else 1e-6
    logs = np.log(np.maximum(y, 0.0) + floor)
    scores: list[Score] = []
    fitted_at = -1  # no anchor: the first day fits
    seasonal, scale = np.empty(0), 0.0
    with threadpool_limits(1):  # tiny matrices: one BLAS thread each, no fighting over cores
        for t in range(max(start, window), len(y)):
            anchor = t - (t - window) % REFIT_EVERY  # fixed refit days, so a day scores the same from any start
            if anchor != fitted_at:
                seasonal, scale = _fit(logs[anchor - window : anchor])
                fitted_at = anchor
            offset = t - fitted_at  # days since the fit window ended
            season = np.concatenate([seasonal, np.resize(seasonal[-PERIOD:], offset + 1)])  # periodic extension
            history = logs[t - window : t] - season[offset : offset + window]
            expected_log = float(np.median(history[-LEVEL_DAYS:]) + season[window + offset - PERIOD])
            scores.append(Score(t, float(np.exp(expected_log) - floor), (logs[t] - expected_log) / scale))
    return scores


def _fit(logs: np.ndarray) -> tuple[np.ndarray, float]:
    """The weekly pattern of a window and the robust scale of its one-step-ahead errors."""
    seasonal = statsmodels("statsmodels.tsa.seasonal").STL(logs, period=PERIOD, seasonal=31, robust=True).fit().seasonal
    deseasonalised = logs - seasonal
    levels = np.median(sliding_window_view(deseasonalised[:-1], LEVEL_DAYS), axis=1)  # levels[i]: median of days i..i+6
    errors = deseasonalised[2 * LEVEL_DAYS :] - levels[LEVEL_DAYS:]
    mad = 1.4826 * float(np.median(np.abs(errors - np.median(errors))))
    return seasonal, max(mad, MIN_SCALE)


@dataclass(frozen=True)
class Anomaly:
    """One unusual day of one series, with its exact impact in money."""

    cost_center: str
    service: str
    day: date
    actual: Decimal
    expected: Decimal
    score: float

    @property
    def impact(self) -> Decimal:
        return self.actual - self.expected

    @property
    def impact_pct(self) -> Decimal | None:
        if self.expected == 0:
            return None
        return (self.impact * 100 / self.expected).quantize(Decimal("0.1"))

    def as_dict(self) -> dict[str, object]:
        return {
            "cost_center": self.cost_center,
            "service": self.service,
            "day": self.day.isoformat(),
            "actual": format(self.actual, "f"),
            "expected": format(self.expected, "f"),
            "impact": format(self.impact, "f"),
            "impact_pct": None if self.impact_pct is None else str(self.impact_pct),
            "score": round(self.score, 2),
        }


def detect_anomalies(
    series: Mapping[tuple[str, ...], Mapping[date, Decimal]],
    *,
    since: date | None = None,
    threshold: float = THRESHOLD,
    scale: int = 2,
) -> list[Anomaly]:
    """Anomalies in daily series keyed by (cost center, service) or (cost center,).

    Missing days count as zero cost. Days before ``since`` are not reported (but still
    learnt from); a series with less than :data:`WINDOW` days of history is not scored.
    Expected amounts are quantised to ``scale`` digits; actual amounts stay exact.
    """
    found: list[Anomaly] = []
    for key, points in series.items():
        if not points:
            continue
        first, last = min(points), max(points)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        values = [float(points.get(d, 0)) for d in days]
        start = WINDOW if since is None else max(WINDOW, (since - first).days)
        for s in score_series(values, start=start):
            if abs(s.score) < threshold:
                continue
            service = key[1] if len(key) > 1 else "(all)"
            actual = points.get(days[s.index], Decimal(0))
            expected = estimate(Decimal(repr(s.expected)), scale)
            found.append(Anomaly(key[0], service, days[s.index], actual, expected, s.score))
    return sorted(found, key=lambda a: (a.day, a.cost_center, a.service))


@dataclass(frozen=True)
class AlertGate:
    """What makes a detected anomaly worth an alert: both impacts must reach their minimum."""

    min_impact: Decimal = Decimal(100)
    min_impact_pct: Decimal = Decimal(20)

    def passes(self, anomaly: Anomaly) -> bool:
        pct = anomaly.impact_pct
        return abs(anomaly.impact) >= self.min_impact and (pct is None or abs(pct) >= self.min_impact_pct)


def gate(anomalies: Sequence[Anomaly], alert_gate: AlertGate) -> list[Anomaly]:
    return [a for a in anomalies if alert_gate.passes(a)]
