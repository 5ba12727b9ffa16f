"""chargeback-engine: turn cloud bills into charges that teams own.

The stable imports are this package (what ``__all__`` lists: embedding the engine),
:mod:`chargeback_engine.plugin` (writing a plugin) and :mod:`chargeback_engine.testing`
(testing one). Every other module is internal and may change without notice; see
``docs/architecture.md``.
"""

from __future__ import annotations

from chargeback_engine.engine.result import RunResult
from chargeback_engine.engine.runner import Engine
from chargeback_engine.errors import (
    ChargebackError,
    ConservationError,
    Diagnostic,
    InputError,
    PeriodError,
    PluginError,
    PolicyError,
)
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.periods import Period
from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager
from chargeback_engine.policy.loader import load_policies, validate
from chargeback_engine.policy.policy_model import Policy, PolicySet

__all__ = [
    "ChargebackError",
    "ConservationError",
    "Diagnostic",
    "Engine",
    "InputError",
    "PeriodError",
    "PluginError",
    "PolicyError",
    "Period",
    "Policy",
    "PolicySet",
    "Registry",
    "RunResult",
    "build_registry",
    "get_plugin_manager",
    "hookimpl",
    "load_policies",
    "validate",
    "__version__",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("chargeback-engine")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
