"""The plugin manager factory and the registry of contributed components.

There is no import-time global: :func:`get_plugin_manager` builds a fresh manager, and an
embedding service may pass its own. Built-in plugins are declared in this distribution's
own ``chargeback_engine`` entry points, so they load through exactly the same path as a
third party's, and the same allow- and block-lists apply to them.

Every failure a plugin can cause (an import error, a hook that pluggy rejects, a hook that
raises, a component that is not valid) becomes a :class:`~chargeback_engine.errors.PluginError`
naming the plugin and the distribution it came from, so the user knows whom to blame.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

import pluggy
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from chargeback_engine import hookspecs
from chargeback_engine.components import Allocator, Collector, Exporter, Notifier
from chargeback_engine.enrich.model import Enricher
from chargeback_engine.errors import ChargebackError, PluginError
from chargeback_engine.logs import get_logger

#: Comma-separated plugin names. ``--allow-plugin`` replaces the allow-list from the
#: environment; ``--block-plugin`` adds to the block-list from the environment.
ALLOW_ENV = "CHARGEBACK_PLUGINS_ALLOW"
BLOCK_ENV = "CHARGEBACK_PLUGINS_BLOCK"

#: The distribution whose entry-point plugins count as built-in.
BUILTIN_DISTRIBUTION = "chargeback-engine"

#: Component names, like rule ids, are kebab-case: ``even``, ``acme-weighted``, ``s3-cur``.
KEBAB_CASE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

T = TypeVar("T")

#: What a user can do about a plugin that raised or broke its contract.
REPORT_IT = "this is a bug in the plugin: report it to its authors (chargeback plugins names its distribution)"

log = get_logger(__name__)


@dataclass(frozen=True)
class PluginOrigin:
    """The distribution a plugin was installed with; both ``None`` for one registered in code."""

    distribution: str | None = None
    version: str | None = None

    @property
    def builtin(self) -> bool:
        return _normalize(self.distribution or "") == _normalize(BUILTIN_DISTRIBUTION)

    def __str__(self) -> str:
        if self.distribution is None:
            return "registered in code"
        return f"distribution {self.distribution} {self.version}"


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, PluginOrigin] = {}


def _normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _names_from_env(variable: str) -> set[str]:
    return {n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()}


def get_plugin_manager(
    allow: Iterable[str] | None = None,
    block: Iterable[str] = (),
    *,
    load_entry_points: bool = True,
) -> PluginManager:
    """Build a plugin manager with the entry-point plugins that pass the lists.

    ``allow`` (if given) names the only entry points that may load and replaces
    ``CHARGEBACK_PLUGINS_ALLOW``; ``block`` names entry points that may not, in addition to
    ``CHARGEBACK_PLUGINS_BLOCK``. A name that is not allowed is never imported. With
    ``load_entry_points=False`` the manager starts empty, for callers that register their
    own plugins (see :mod:`chargeback_engine.testing`).
    """
    pm = PluginManager()
    allowed = set(allow) if allow is not None else (_names_from_env(ALLOW_ENV) or None)
    blocked = set(block) | _names_from_env(BLOCK_ENV)
    if load_entry_points:
        for ep in _unique_entry_points():
            if ep.name in blocked or (allowed is not None and ep.name not in allowed):
                pm.set_blocked(ep.name)
                continue
            _load(pm, ep)
        skipped = sorted(name for name, plugin in pm.list_name_plugin() if plugin is None)
        log.debug("plugins.loaded", plugins=sorted(pm.origins), skipped=skipped)
        unknown = sorted((allowed or set()) - set(pm.origins) - set(blocked))
        if unknown:
            log.warning("plugin.allow_list_unmatched", plugins=unknown)
    check_pending(pm)
    return pm


def load_builtins(pm: PluginManager) -> None:
    """Register the built-in plugins (this distribution's own entry points) into ``pm``."""
    for ep in _unique_entry_points():
        if _origin_of_entry_point(ep).builtin and pm.get_plugin(ep.name) is None:
            _load(pm, ep)


def _unique_entry_points() -> Iterator[EntryPoint]:
    """The group's entry points, refusing two distributions that claim the same plugin name."""
    seen: dict[str, EntryPoint] = {}
    for ep in sorted(entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:
            first, second = sorted([_origin_of_entry_point(seen[ep.name]), _origin_of_entry_point(ep)], key=str)
            raise PluginError(f"plugin {ep.name!r} is declared twice: by {first} and by {second}; uninstall one")
        seen[ep.name] = ep
        yield ep


def _origin_of_entry_point(ep: EntryPoint) -> PluginOrigin:
    dist = ep.dist
    if dist is None:
        return PluginOrigin()
    return PluginOrigin(dist.metadata["Name"], dist.version)


def _load(pm: PluginManager, ep: EntryPoint) -> None:
    origin = _origin_of_entry_point(ep)
    try:
        plugin = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        raise PluginError(f"plugin {ep.name!r} ({origin}) failed to import {ep.value!r}: {_describe(exc)}") from exc
    register_plugin(pm, plugin, ep.name, origin)


def register_plugin(pm: PluginManager, plugin: object, name: str, origin: PluginOrigin = PluginOrigin()) -> None:
    """Register one plugin object (a module or any object with ``@hookimpl`` functions)."""
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # pluggy's message spans lines; errors are one line
        raise PluginError(f"plugin {name!r} ({origin}) could not be registered: {reason}") from exc
    pm.origins[name] = origin


def check_pending(pm: pluggy.PluginManager) -> None:
    """Fail loudly on a hook implementation whose name matches no hookspec (a typo, usually)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        reason = " ".join(str(exc).split())
        raise PluginError(f"{describe_plugin(pm, exc.plugin)} implements an unknown hook: {reason}") from exc


def plugin_origin(pm: pluggy.PluginManager, name: str) -> PluginOrigin:
    """Where the plugin registered as ``name`` came from, for any pluggy manager."""
    if isinstance(pm, PluginManager) and name in pm.origins:
        return pm.origins[name]
    plugin = pm.get_plugin(name)
    for candidate, dist in pm.list_plugin_distinfo():
        if candidate is plugin:
            return PluginOrigin(dist.project_name, dist.version)
    return PluginOrigin()


def describe_plugin(pm: pluggy.PluginManager, plugin: object) -> str:
    """``plugin 'name' (distribution dist 1.0)``: how every error names a plugin."""
    name = pm.get_name(plugin) or repr(plugin)
    return f"plugin {name!r} ({plugin_origin(pm, name)})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def reported(kind: str, registered: Registered[Any], name: str) -> Iterator[None]:
    """Run a component's own code so that a failure names the component and its plugin,
    never a bare traceback; the engine's own errors (bad input, bad policy) pass as they are."""
    try:
        yield
    except ChargebackError:
        raise
    except Exception as exc:  # third-party code
        raise plugin_fault(kind, registered, name, f"raised {_describe(exc)}") from exc


def plugin_fault(kind: str, registered: Registered[Any], name: str, what: str) -> PluginError:
    """The error for a component that broke its contract (raised, or returned the wrong
    thing): one sentence naming it, its plugin, and what the user can do."""
    return PluginError(f"{kind} {name!r} of plugin {registered.plugin!r} {what}; {REPORT_IT}")


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> None:
    """Call a hook one implementation at a time, so a failure names the plugin that raised.

    The engine notifies observer hooks (``chargeback_<event>_<past tense>``) through this
    instead of ``pm.hook.<name>(...)``, whose exceptions carry no plugin name.
    """
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        _call_one(impl, hook_name, describe_plugin(pm, impl.plugin), **kwargs)


def _call_one(impl: pluggy.HookImpl, hook_name: str, where: str, **kwargs: Any) -> None:
    if impl.hookwrapper or impl.wrapper:
        raise PluginError(f"{where} implements {hook_name} as a wrapper, which chargeback does not support")
    try:
        impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
    except PluginError:
        raise
    except Exception as exc:  # third-party code: report it, never a bare traceback
        raise PluginError(f"{where} raised in {hook_name}: {_describe(exc)}; {REPORT_IT}") from exc


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
    enrichers: dict[str, Registered[Enricher]] = field(default_factory=dict)

    def allocator(self, name: str) -> Allocator:
        return self.allocators[name].component

    def collector(self, name: str) -> Collector:
        return self.collectors[name].component

    def exporter(self, name: str) -> Exporter:
        return self.exporters[name].component

    def notifier(self, name: str) -> Notifier:
        return self.notifiers[name].component

    def registered(self, kind: str, name: str) -> Registered[Any]:
        """The component of ``kind`` (a :data:`KINDS` key) named ``name``, and its plugin; a
        :class:`PluginError` when none is, so a run names what is missing."""
        entry: Registered[Any] | None = getattr(self, kind).get(name)
        if entry is None:
            raise PluginError(
                f"no {KINDS[kind].singular} {name!r} is registered (is its plugin installed and allowed?)"
            )
        return entry

    def names_by_plugin(self, plugin: str) -> dict[str, list[str]]:
        """What one plugin contributed, by kind, names sorted."""
        return {
            kind: sorted(name for name, entry in getattr(self, kind).items() if entry.plugin == plugin)
            for kind in KINDS
        }


@dataclass(frozen=True)
class Kind:
    """One kind of component: the hook that contributes it, its protocol and its schema attribute."""

    hook: str
    protocol: type
    schema_attribute: str
    methods: tuple[str, ...]

    @property
    def singular(self) -> str:
        return self.hook.removeprefix("chargeback_register_").removesuffix("s")

    @property
    def with_article(self) -> str:
        return ("an " if self.singular[0] in "aeiou" else "a ") + self.singular


#: Component kinds by their :class:`Registry` attribute.
KINDS: Mapping[str, Kind] = {
    "collectors": Kind("chargeback_register_collectors", Collector, "config_schema", ("collect",)),
    "allocators": Kind(
        "chargeback_register_allocators", Allocator, "params_schema", ("check", "targets", "fields", "resolve")
    ),
    "exporters": Kind("chargeback_register_exporters", Exporter, "options_schema", ("export",)),
    "notifiers": Kind("chargeback_register_notifiers", Notifier, "options_schema", ("send",)),
    "enrichers": Kind("chargeback_register_enrichers", Enricher, "options_schema", ("inventory",)),
}


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every register hook, one plugin at a time, validating everything registered."""
    registry = Registry()
    for kind_name, kind in KINDS.items():
        table: dict[str, Registered[Any]] = getattr(registry, kind_name)
        for impl in getattr(pm.hook, kind.hook).get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            where = describe_plugin(pm, impl.plugin)
            _call_one(impl, kind.hook, where, register=_register_into(table, kind, plugin_name, where))
    return registry


def _register_into(
    table: dict[str, Registered[Any]], kind: Kind, plugin_name: str, where: str
) -> Callable[[Any], None]:
    def register(component: Any) -> None:
        name = validate_component(component, kind, where)
        if name in table:
            raise PluginError(
                f"{where} registered {kind.singular} {name!r}, already registered by plugin {table[name].plugin!r}"
            )
        table[name] = Registered(component, plugin_name)

    return register


def validate_component(component: Any, kind: Kind, where: str) -> str:
    """Check one registered component and return its name; the message says what to fix."""
    name = getattr(component, "name", None)
    label = f"{kind.singular} {name!r}" if isinstance(name, str) else repr(component)
    if not isinstance(component, kind.protocol) or not all(callable(getattr(component, m)) for m in kind.methods):
        needs = ", ".join(["name", kind.schema_attribute, *(f"{m}()" for m in kind.methods)])
        raise PluginError(f"{where} registered {label}, which is not {kind.with_article} (it needs {needs})")
    if not isinstance(name, str) or not KEBAB_CASE.match(name):
        raise PluginError(f"{where} registered {label}: the name must be kebab-case, like 'even-split'")
    schema = getattr(component, kind.schema_attribute)
    if not isinstance(schema, Mapping):
        raise PluginError(f"{where} registered {label}: {kind.schema_attribute} must be a JSON Schema object")
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise PluginError(
            f"{where} registered {label}: {kind.schema_attribute} is not valid JSON Schema 2020-12 "
            f"at {at}: {exc.message}"
        ) from exc
    return name


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin as ``chargeback plugins`` shows it."""

    name: str
    origin: PluginOrigin
    hooks: tuple[str, ...]
    registers: Mapping[str, list[str]]  # component kind -> names

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.origin.distribution,
            "version": self.origin.version,
            "builtin": self.origin.builtin,
            "hooks": list(self.hooks),
            **{kind: list(names) for kind, names in self.registers.items()},
        }


def list_plugins(pm: pluggy.PluginManager, *, include_builtin: bool = False) -> list[PluginInfo]:
    """Every plugin of ``pm`` with its distribution and what it registers, sorted by name.

    Built-in plugins (those of the ``chargeback-engine`` distribution) are left out unless
    ``include_builtin``: the question this answers is usually "did my install work?".
    """
    registry = build_registry(pm)
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # a blocked name
            continue
        origin = plugin_origin(pm, name)
        if origin.builtin and not include_builtin:
            continue
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))
        infos.append(PluginInfo(name, origin, hooks, registry.names_by_plugin(name)))
    return sorted(infos, key=lambda info: info.name)
