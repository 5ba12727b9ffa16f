"""Insight: reports, KPIs, budgets and alerts, anomalies, forecasts and the dashboard.

Analyses are pure functions over cost facts (:mod:`.facts`); :class:`Insight` gathers their
inputs from stored periods, business metrics and the insight store.
"""

from __future__ import annotations

from chargeback_engine.components import Alert
from chargeback_engine.errors import NotifyError
from chargeback_engine.insight.alerts import Channel, Delivery, channels, deliver, read_channels
from chargeback_engine.insight.anomalies import AlertGate, Anomaly, detect_anomalies, gate
from chargeback_engine.insight.api import Insight
from chargeback_engine.insight.dashboard import dashboard_html, write_dashboard
from chargeback_engine.insight.facts import Facts, ledger_facts
from chargeback_engine.insight.forecast import Forecast, ForecastError, forecast_cost_center
from chargeback_engine.insight.persistence import InsightStore
from chargeback_engine.insight.render import render
from chargeback_engine.insight.sources import read_budgets, read_metrics, read_run_directory
from chargeback_engine.insight.synthetic_series import write_sample

__all__ = [
    "Alert",
    "AlertGate",
    "Anomaly",
    "Channel",
    "Delivery",
    "Facts",
    "Forecast",
    "ForecastError",
    "Insight",
    "InsightStore",
    "NotifyError",
    "channels",
    "dashboard_html",
    "deliver",
    "detect_anomalies",
    "forecast_cost_center",
    "gate",
    "ledger_facts",
    "read_budgets",
    "read_channels",
    "read_metrics",
    "read_run_directory",
    "render",
    "write_dashboard",
    "write_sample",
]
