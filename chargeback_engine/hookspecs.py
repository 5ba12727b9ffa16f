"""Every hook the engine calls, in one typed module.

Plugins implement these with ``@chargeback_engine.hookimpl``. Contribution hooks take a
``register`` callback: the plugin calls it once per component, and the host validates and
de-duplicates what it receives. Observer hooks are named ``chargeback_<event>_<past tense>``.

The host calls every hook one implementation at a time (``plugins.build_registry`` and
``plugins.call_each``), so an exception is reported as a ``PluginError`` naming the plugin
and its distribution; wrappers are therefore not supported. ``docs/plugin-hooks.md``
documents each hook, and a test fails if one is missing there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pyarrow as pa

    from chargeback_engine.components import Allocator, Collector, Exporter, Notifier
    from chargeback_engine.enrich.model import Enricher

PROJECT_NAME = "chargeback_engine"
ENTRY_POINT_GROUP = "chargeback_engine"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def chargeback_register_collectors(register: Callable[[Collector], None]) -> None:
    """Contribute collectors, which read cost data into the FOCUS cost table.

    :param register: call once per :class:`~chargeback_engine.components.Collector`.

    .. versionadded:: 0.1.0
    """


@hookspec
def chargeback_register_allocators(register: Callable[[Allocator], None]) -> None:
    """Contribute allocation methods, usable as ``allocate: {method: <name>}`` in policies.

    :param register: call once per :class:`~chargeback_engine.components.Allocator`.

    .. versionadded:: 0.1.0
    """


@hookspec
def chargeback_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Contribute exporters, which write a finished run somewhere.

    :param register: call once per :class:`~chargeback_engine.components.Exporter`.

    .. versionadded:: 0.1.0
    """


@hookspec
def chargeback_register_notifiers(register: Callable[[Notifier], None]) -> None:
    """Contribute notifiers, which deliver budget and anomaly alerts (chat, webhook, email).

    :param register: call once per :class:`~chargeback_engine.components.Notifier`.

    .. versionadded:: 0.1.0
    """


@hookspec
def chargeback_register_enrichers(register: Callable[[Enricher], None]) -> None:
    """Contribute enrichers, which read a resource inventory's tags (usable in ``spec.enrich``).

    :param register: call once per :class:`~chargeback_engine.enrich.model.Enricher`.

    .. versionadded:: 0.1.0
    """


@hookspec
def chargeback_decisions_recorded(run_id: str, decisions: pa.Table) -> None:
    """Observe the allocation decisions of a run once they are final, before outputs are written.

    :param run_id: the content-derived id of the run.
    :param decisions: one row per decision, in :data:`chargeback_engine.ledger.DECISION_RECORD_SCHEMA`.

    .. versionadded:: 0.1.0
    """
