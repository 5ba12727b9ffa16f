"""The plugin manager factory and the registry of contributed components.

There is no import-time global: :func:`get_plugin_manager` builds a fresh manager, and an
embedding service may pass its own. Built-in plugins are declared in this distribution's
own ``chargeback_engine`` entry points, so they load through exactly the same path as a
third party's, and the same allow- and block-lists apply to them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from chargeback_engine import hookspecs
from chargeback_engine.components import Allocator, Collector, Exporter, Notifier
from chargeback_engine.errors import PluginError

#: Comma-separated plugin names; the CLI's --allow-plugin/--block-plugin add to these.
ALLOW_ENV = "CHARGEBACK_PLUGINS_ALLOW"
BLOCK_ENV = "CHARGEBACK_PLUGINS_BLOCK"

T = TypeVar("T")


def _names_from_env(variable: str) -> set[str]:
    return {n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()}


def get_plugin_manager(
    allow: Iterable[str] | None = None,
    block: Iterable[str] = (),
    *,
    load_entry_points: bool = True,
) -> pluggy.PluginManager:
    """Build a plugin manager with the entry-point plugins that pass the lists.

    ``allow`` (if given) names the only entry points that may load; ``block`` names entry
    points that may not. A name that is not allowed is never imported. Both default to
    the ``CHARGEBACK_PLUGINS_ALLOW`` / ``CHARGEBACK_PLUGINS_BLOCK`` environment variables.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    allowed = set(allow) if allow is not None else (_names_from_env(ALLOW_ENV) or None)
    blocked = set(block) | _names_from_env(BLOCK_ENV)
    if load_entry_points:
        for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if ep.name in blocked or (allowed is not None and ep.name not in allowed):
                pm.set_blocked(ep.name)
        try:
            pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken plugin must be named, not dumped as a traceback
            raise PluginError(f"a plugin failed to load: {_describe(exc)}") from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin_name!r} implements an unknown hook: {exc}") from exc
    return pm


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Registered(Generic[T]):
    component: T
    plugin: str  # name of the plugin that registered it


@dataclass
class Registry:
    """Components contributed by the plugins of one manager, by kind and name."""

    collectors: dict[str, Registered[Collector]] = field(default_factory=dict)
    allocators: dict[str, Registered[Allocator]] = field(default_factory=dict)
    exporters: dict[str, Registered[Exporter]] = field(default_factory=dict)
    notifiers: dict[str, Registered[Notifier]] = field(default_factory=dict)

    def allocator(self, name: str) -> Allocator:
        return self.allocators[name].component

    def collector(self, name: str) -> Collector:
        return self.collectors[name].component

    def exporter(self, name: str) -> Exporter:
        return self.exporters[name].component

    def notifier(self, name: str) -> Notifier:
        return self.notifiers[name].component


_KINDS: Mapping[str, tuple[str, type]] = {
    "collectors": ("chargeback_register_collectors", Collector),
    "allocators": ("chargeback_register_allocators", Allocator),
    "exporters": ("chargeback_register_exporters", Exporter),
    "notifiers": ("chargeback_register_notifiers", Notifier),
}


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every register hook, one plugin at a time, so each failure names its plugin."""
    registry = Registry()
    for kind, (hook_name, protocol) in _KINDS.items():
        table: dict[str, Registered[Any]] = getattr(registry, kind)
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            register = _register_into(table, kind, protocol, plugin_name)
            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {plugin_name!r} raised in {hook_name}: {_describe(exc)}") from exc
    return registry


def _register_into(
    table: dict[str, Registered[Any]], kind: str, protocol: type, plugin_name: str
) -> Callable[[Any], None]:
    singular = kind[:-1]

    def register(component: Any) -> None:
        if not isinstance(component, protocol):
            raise PluginError(f"plugin {plugin_name!r} registered {component!r}, which is not a {singular}")
        name = component.name
        if name in table:
            raise PluginError(
                f"plugin {plugin_name!r} registered {singular} {name!r}, "
                f"already registered by plugin {table[name].plugin!r}"
            )
        table[name] = Registered(component, plugin_name)

    return register
