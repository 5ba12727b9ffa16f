"""Evaluate anomaly detection and forecasting on seeded synthetic series with known answers.

These are quality measurements, not tests: they return the figures (precision, recall,
false-positive rate, MAPE) so the docs and the release notes can quote them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from chargeback_engine.insight.anomalies import THRESHOLD, WINDOW, score_series
from chargeback_engine.insight.forecast import forecast_cost_center
from chargeback_engine.insight.synthetic_series import daily_series, series_with_anomalies
from chargeback_engine.periods import Period

#: Days after a level shift's first day that still count as the anomaly (the detector
#: learns the new level within this time, after which the new level is normal).
SHIFT_SETTLE_DAYS = 4


@dataclass(frozen=True)
class DetectionQuality:
    series: int
    days: int
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> float:
        return self.true_positives / max(1, self.true_positives + self.false_positives)

    @property
    def recall(self) -> float:
        return self.true_positives / max(1, self.true_positives + self.false_negatives)

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / max(1, self.false_positives + self.true_negatives)


def evaluate_detection(
    *, seed: int = 2026, series: int = 40, days: int = 150, threshold: float = THRESHOLD
) -> DetectionQuality:
    """Score detection day by day on ``series`` seeded series, each with 2 spikes and 1 level shift."""
    rng = random.Random(seed)
    tp = fp = fn = tn = 0
    evaluate_from = WINDOW + 30
    for _ in range(series):
        sample = series_with_anomalies(rng, days, evaluate_from=evaluate_from)
        anomalous = set(sample.spikes)
        for start in sample.shifts:
            anomalous.update(range(start, start + SHIFT_SETTLE_DAYS))
        for s in score_series(sample.values, start=evaluate_from):
            flagged = abs(s.score) >= threshold
            if s.index in anomalous:
                tp, fn = tp + int(flagged), fn + int(not flagged)
            else:
                fp, tn = fp + int(flagged), tn + int(not flagged)
    return DetectionQuality(series, days - evaluate_from, tp, fp, fn, tn)


@dataclass(frozen=True)
class ForecastQuality:
    series: int
    mape_pct: float  # month-end forecast made on the 15th, against the actual month total
    interval_coverage: float  # share of actual totals inside the forecast interval


def backtest_month_end(*, seed: int = 2026, series: int = 20, as_of_day: int = 15) -> ForecastQuality:
    """Forecast each seeded series' month total on day ``as_of_day`` and compare with the actual."""
    rng = random.Random(seed)
    month = Period(2026, 7)  # 31 days, preceded by four months of history
    first_day = month.shift(-4).start
    days = (month.end - first_day).days
    errors: list[float] = []
    covered = 0
    for i in range(series):
        values = daily_series(rng, days, start_weekday=first_day.weekday())
        daily = {first_day + timedelta(days=t): Decimal(repr(round(v, 4))) for t, v in enumerate(values)}
        actual = sum((v for d, v in daily.items() if d >= month.start), Decimal(0))
        as_of = month.start + timedelta(days=as_of_day - 1)
        forecast = forecast_cost_center(f"series-{i}", daily, as_of, months=0)[0]
        errors.append(abs(float(forecast.amount - actual)) / float(actual))
        covered += forecast.lower <= actual <= forecast.upper
    return ForecastQuality(series, 100 * sum(errors) / len(errors), covered / series)
