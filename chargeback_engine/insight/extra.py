"""The ``insight`` extra: statsmodels, which only anomaly detection and forecasting use.

statsmodels brings scipy and pandas, about a quarter of a full install, so a plain
``pip install chargeback-engine`` leaves it out and these two features ask for it by name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from chargeback_engine.errors import ChargebackError

INSTALL_HINT = "pip install 'chargeback-engine[insight]'"


def statsmodels(module: str) -> ModuleType:
    """Import a statsmodels module on first use (it costs seconds); a clear error when the extra is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ChargebackError(
            f"anomaly detection and forecasts need statsmodels, which is not installed: {INSTALL_HINT}"
        ) from exc
