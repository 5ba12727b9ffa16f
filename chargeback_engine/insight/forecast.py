"""Month-end and next-months forecasts per cost center, with intervals.

The model is additive ETS with a damped trend and a weekly season (statsmodels
``ETSModel``, initial states from the classical heuristic so only the four smoothing
parameters are optimised), fitted to the last :data:`TRAINING_DAYS` daily totals. Intervals come from
simulated future paths summed per month, because the interval of a month's total is not
the sum of the daily intervals. The simulation is seeded, so forecasts are reproducible.
Floats live only inside the model; every reported amount is a quantised Decimal.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from threadpoolctl import threadpool_limits

from chargeback_engine.errors import ChargebackError
from chargeback_engine.insight.extra import statsmodels
from chargeback_engine.money import estimate
from chargeback_engine.periods import Period

TRAINING_DAYS = 90
MIN_HISTORY_DAYS = 28
PATHS = 1000
SEED = 20260101


class ForecastError(ChargebackError):
    """A series is too short to forecast."""


@dataclass(frozen=True)
class Forecast:
    """The forecast total of one cost center for one period, made on ``as_of``."""

    cost_center: str
    period: str
    as_of: date
    actual_to_date: Decimal
    amount: Decimal
    lower: Decimal
    upper: Decimal
    level: int  # interval coverage in percent

    def as_dict(self) -> dict[str, object]:
        return {
            "cost_center": self.cost_center,
            "period": self.period,
            "as_of": self.as_of.isoformat(),
            "actual_to_date": format(self.actual_to_date, "f"),
            "amount": format(self.amount, "f"),
            "lower": format(self.lower, "f"),
            "upper": format(self.upper, "f"),
            "level": self.level,
        }


def forecast_cost_center(
    cost_center: str,
    daily: Mapping[date, Decimal],
    as_of: date,
    *,
    months: int = 3,
    level: int = 90,
    scale: int = 2,
) -> list[Forecast]:
    """Forecast the period containing ``as_of`` (month end) and the ``months`` after it.

    ``daily`` holds actual cost per day; days up to and including ``as_of`` are history,
    missing days count as zero. The first forecast adds the actual month-to-date cost.
    """
    days = sorted(d for d in daily if d <= as_of)
    if not days or (as_of - days[0]).days + 1 < MIN_HISTORY_DAYS:
        raise ForecastError(f"{cost_center}: forecasting needs {MIN_HISTORY_DAYS} days of history before {as_of}")
    start = max(days[0], as_of - timedelta(days=TRAINING_DAYS - 1))
    history = [float(daily.get(start + timedelta(days=i), 0)) for i in range((as_of - start).days + 1)]
    current = Period.of(as_of)
    horizon_end = current.shift(months + 1).start
    horizon = (horizon_end - as_of).days - 1
    mean, paths = _simulate(np.asarray(history), horizon) if horizon > 0 else (np.zeros(0), np.zeros((0, 1)))
    alpha = (100 - level) / 2
    forecasts = []
    for offset in range(months + 1):
        period = current.shift(offset)
        first = max((period.start - as_of).days - 1, 0)
        last = (period.end - as_of).days - 1
        to_date = sum((v for d, v in daily.items() if period.start <= d <= as_of), Decimal(0))
        totals = paths[first:last].sum(axis=0)
        low, high = np.percentile(totals, [alpha, 100 - alpha])
        point = float(mean[first:last].sum())
        forecasts.append(
            Forecast(
                cost_center,
                str(period),
                as_of,
                to_date,
                estimate(to_date + _decimal(point), scale),
                estimate(to_date + _decimal(low), scale),
                estimate(to_date + _decimal(high), scale),
                level,
            )
        )
    return forecasts


def _simulate(history: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean path and ``PATHS`` simulated paths (shape horizon × PATHS) of the next days."""
    ETSModel = statsmodels("statsmodels.tsa.exponential_smoothing.ets").ETSModel

    # One BLAS thread: these matrices are tiny, and a thread per core only fights the other processes.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence chatter from the optimiser
        model = ETSModel(
            history,
            error="add",
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=7,
            initialization_method="heuristic",
        )
        fitted = model.fit(disp=False)
        mean = np.asarray(fitted.forecast(horizon))
        paths = np.asarray(
            fitted.simulate(horizon, anchor="end", repetitions=PATHS, rng=np.random.default_rng(SEED))
        ).reshape(horizon, PATHS)
    return mean, paths


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))
