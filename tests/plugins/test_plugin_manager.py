"""The plugin manager and registry: loading, allow/block lists, and errors that name the plugin."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from chargeback_engine import PluginError, hookimpl
from chargeback_engine.plugins import PluginOrigin, build_registry, call_each, get_plugin_manager, list_plugins
from chargeback_engine.testing import make_plugin_manager, make_registry

ALLOCATOR_MODULE = """
    from pathlib import Path
    from chargeback_engine import hookimpl

    Path(__file__).with_name("imported-" + __name__).write_text("yes")

    class Even:
        name = "{name}"
        params_schema = {{"type": "object", "properties": {{"method": {{"const": "{name}"}}}}}}
        def check(self, params, policy): return []
        def targets(self, params, policy): return frozenset()
        def fields(self, params): return frozenset()
        def resolve(self, params, context): raise NotImplementedError

    @hookimpl
    def chargeback_register_allocators(register):
        register(Even())
"""


class Allocator:
    def __init__(self, name: object = "even-split", params_schema: object = None):
        self.name = name
        self.params_schema = {"type": "object"} if params_schema is None else params_schema

    def check(self, params, policy):  # type: ignore[no-untyped-def]
        return []

    def targets(self, params, policy):  # type: ignore[no-untyped-def]
        return frozenset()

    def fields(self, params):  # type: ignore[no-untyped-def]
        return frozenset()

    def resolve(self, params, context):  # type: ignore[no-untyped-def]
        raise NotImplementedError("never run in these tests")


def registering(*components: object, name: str = "inline") -> object:
    """A plugin object whose allocator hook registers ``components``."""

    class Plugin:
        __name__ = name

        @hookimpl
        def chargeback_register_allocators(self, register):  # type: ignore[no-untyped-def]
            for component in components:
                register(component)

    return Plugin()


def test_registry_holds_what_the_given_plugins_register():
    registry = make_registry(registering(Allocator("even-split"), Allocator("by-weight"), name="mine"))
    assert sorted(registry.allocators) == ["by-weight", "even-split"]
    assert registry.allocators["even-split"].plugin == "mine"
    assert registry.names_by_plugin("mine") == {
        "collectors": [],
        "allocators": ["by-weight", "even-split"],
        "exporters": [],
        "notifiers": [],
        "enrichers": [],
    }


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (
            object(),
            r"registered <object object at .*>, which is not an allocator \(it needs name, params_schema, check\(\), targets\(\), fields\(\), resolve\(\)\)",
        ),
        (Allocator("Even_Split"), r"registered allocator 'Even_Split': the name must be kebab-case"),
        (Allocator("-even"), r"registered allocator '-even': the name must be kebab-case"),
        (Allocator(42), r"registered 42|which is not an allocator|must be kebab-case"),
        (Allocator(params_schema=["not", "a", "mapping"]), r"params_schema must be a JSON Schema object"),
        (
            Allocator(params_schema={"type": "decimal"}),
            r"params_schema is not valid JSON Schema 2020-12 at type: 'decimal' is not valid",
        ),
        (
            Allocator(params_schema={"properties": {"x": {"minimum": "1"}}}),
            r"params_schema is not valid JSON Schema 2020-12 at properties/x/minimum: '1' is not of type 'number'",
        ),
    ],
)
def test_an_invalid_component_is_reported_with_its_plugin(component, message):
    with pytest.raises(PluginError, match=r"^plugin 'bad' \(registered in code\) ") as caught:
        make_registry(registering(component, name="bad"))
    assert re.search(message, str(caught.value)), str(caught.value)


def test_a_duplicate_name_names_both_plugins():
    with pytest.raises(PluginError) as caught:
        make_registry(registering(Allocator("evenly"), name="first"), registering(Allocator("evenly"), name="second"))
    assert "registered allocator 'evenly', already registered by plugin" in str(caught.value)
    assert {"first", "second"} <= set(re.findall(r"'(first|second)'", str(caught.value)))


def test_a_hook_that_raises_is_reported_by_plugin_and_hook():
    class Broken:
        __name__ = "broken"

        @hookimpl
        def chargeback_register_collectors(self, register):  # type: ignore[no-untyped-def]
            raise KeyError("region")

    with pytest.raises(
        PluginError,
        match=r"^plugin 'broken' \(registered in code\) raised in "
        r"chargeback_register_collectors: KeyError: 'region';"
        r" this is a bug in the plugin: report it to its authors \(chargeback plugins names its distribution\)$",
    ):
        make_registry(Broken())


def test_a_misspelled_hook_fails_check_pending():
    class Typo:
        __name__ = "typo"

        @hookimpl
        def chargeback_register_alocators(self, register):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(PluginError, match=r"^plugin 'typo' \(registered in code\) implements an unknown hook"):
        make_plugin_manager(Typo())


def test_a_hook_with_wrong_arguments_is_refused_at_registration():
    class WrongArgs:
        __name__ = "wrong-args"

        @hookimpl
        def chargeback_register_allocators(self, add):  # type: ignore[no-untyped-def]
            pass

    with pytest.raises(
        PluginError, match=r"^plugin 'wrong-args' \(registered in code\) could not be registered: .*'add'"
    ):
        make_plugin_manager(WrongArgs())


def test_a_hook_may_take_fewer_arguments_than_the_spec():
    seen = []

    class Quiet:
        __name__ = "quiet"

        @hookimpl
        def chargeback_register_allocators(self):  # type: ignore[no-untyped-def]
            seen.append("called")

    make_registry(Quiet())
    assert seen == ["called"]


def test_observer_hooks_are_called_one_plugin_at_a_time():
    calls = []

    class Observer:
        __name__ = "observer"

        @hookimpl
        def chargeback_decisions_recorded(self, run_id):  # type: ignore[no-untyped-def]
            calls.append(run_id)

    class Failing:
        __name__ = "failing"

        @hookimpl
        def chargeback_decisions_recorded(self, run_id, decisions):  # type: ignore[no-untyped-def]
            raise ValueError(f"cannot store {run_id}")

    call_each(make_plugin_manager(Observer()), "chargeback_decisions_recorded", run_id="run-1", decisions=None)
    assert calls == ["run-1"]
    with pytest.raises(
        PluginError,
        match=r"^plugin 'failing' \(registered in code\) raised in "
        r"chargeback_decisions_recorded: ValueError: cannot store run-2;"
        r" this is a bug in the plugin: report it to its authors \(chargeback plugins names its distribution\)$",
    ):
        call_each(make_plugin_manager(Failing()), "chargeback_decisions_recorded", run_id="run-2", decisions=None)


def test_wrappers_are_refused_for_register_hooks():
    class Wrapper:
        __name__ = "wrapper"

        @hookimpl(wrapper=True)
        def chargeback_register_allocators(self, register):  # type: ignore[no-untyped-def]
            return (yield)

    with pytest.raises(PluginError, match=r"implements chargeback_register_allocators as a wrapper"):
        make_registry(Wrapper())


# --- Entry-point plugins -----------------------------------------------------------------


def test_entry_point_plugins_load_with_their_distribution(install_distribution):
    install_distribution(
        "chargeback-even", "2.0.1", {"cb_even": ALLOCATOR_MODULE.format(name="even-split")}, {"evenly": "cb_even"}
    )
    pm = get_plugin_manager(allow=["evenly"])
    registry = build_registry(pm)
    assert registry.allocators["even-split"].plugin == "evenly"
    [info] = list_plugins(pm)
    assert info.to_json() == {
        "name": "evenly",
        "distribution": "chargeback-even",
        "version": "2.0.1",
        "builtin": False,
        "hooks": ["chargeback_register_allocators"],
        "collectors": [],
        "allocators": ["even-split"],
        "exporters": [],
        "notifiers": [],
        "enrichers": [],
    }


@pytest.mark.parametrize("how", ["allow-list", "block-list", "allow-env", "block-env"])
def test_a_plugin_that_is_not_allowed_is_never_imported(install_distribution, monkeypatch, how):
    site = install_distribution(
        "chargeback-even", "2.0.1", {"cb_even": ALLOCATOR_MODULE.format(name="even-split")}, {"evenly": "cb_even"}
    )
    kwargs: dict = {}
    if how == "allow-list":
        kwargs["allow"] = ["something-else"]
    elif how == "block-list":
        kwargs["block"] = ["evenly"]
    elif how == "allow-env":
        monkeypatch.setenv("CHARGEBACK_PLUGINS_ALLOW", "something-else, other")
    else:
        monkeypatch.setenv("CHARGEBACK_PLUGINS_BLOCK", "other,evenly")
    pm = get_plugin_manager(**kwargs)
    assert pm.get_plugin("evenly") is None and pm.is_blocked("evenly")
    assert "even-split" not in build_registry(pm).allocators
    assert not (site / "imported-cb_even").exists()
    monkeypatch.delenv("CHARGEBACK_PLUGINS_BLOCK", raising=False)
    get_plugin_manager(allow=["evenly"])  # the control: allowed, it is imported
    assert (site / "imported-cb_even").exists()


def test_the_cli_allow_list_replaces_the_environment_one(install_distribution, monkeypatch):
    install_distribution(
        "chargeback-even", "2.0.1", {"cb_even": ALLOCATOR_MODULE.format(name="even-split")}, {"evenly": "cb_even"}
    )
    monkeypatch.setenv("CHARGEBACK_PLUGINS_ALLOW", "other")
    assert get_plugin_manager(allow=["evenly"]).get_plugin("evenly") is not None
    assert get_plugin_manager().get_plugin("evenly") is None


def test_an_import_failure_names_plugin_and_distribution(install_distribution):
    install_distribution(
        "chargeback-broken", "0.3.0", {"cb_broken": "import chargeback_engine.nonexistent\n"}, {"broken": "cb_broken"}
    )
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(allow=["broken"])
    assert str(caught.value) == (
        "plugin 'broken' (distribution chargeback-broken 0.3.0) failed to import 'cb_broken': "
        "ModuleNotFoundError: No module named 'chargeback_engine.nonexistent'"
    )


def test_an_invalid_component_from_a_distribution_names_it(install_distribution):
    install_distribution(
        "chargeback-shouty", "1.0.0", {"cb_shouty": ALLOCATOR_MODULE.format(name="EVEN")}, {"shouty": "cb_shouty"}
    )
    with pytest.raises(
        PluginError,
        match=r"^plugin 'shouty' \(distribution chargeback-shouty 1.0.0\) registered "
        r"allocator 'EVEN': the name must be kebab-case",
    ):
        build_registry(get_plugin_manager(allow=["shouty"]))


def test_two_distributions_declaring_one_plugin_name_are_refused(install_distribution):
    install_distribution("chargeback-a", "1.0.0", {"cb_a": ALLOCATOR_MODULE.format(name="a")}, {"same": "cb_a"})
    install_distribution("chargeback-b", "1.0.0", {"cb_b": ALLOCATOR_MODULE.format(name="b")}, {"same": "cb_b"})
    with pytest.raises(
        PluginError,
        match=r"^plugin 'same' is declared twice: by distribution chargeback-a 1.0.0 "
        r"and by distribution chargeback-b 1.0.0; uninstall one$",
    ):
        get_plugin_manager()


def test_builtin_means_the_chargeback_engine_distribution():
    assert PluginOrigin("chargeback_engine", "0.1.0").builtin
    assert not PluginOrigin("chargeback-aws", "0.1.0").builtin
    assert not PluginOrigin().builtin


def test_an_embedding_service_can_bring_its_own_manager():
    import pluggy

    from chargeback_engine import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(registering(Allocator("evenly")), name="service-local")
    registry = build_registry(pm)
    assert registry.allocators["evenly"].plugin == "service-local"
    [info] = list_plugins(pm)
    assert (info.name, info.origin) == ("service-local", PluginOrigin())


def test_get_plugin_manager_returns_a_fresh_manager_each_time():
    assert get_plugin_manager() is not get_plugin_manager()


def test_namespace_plugins_work_too():
    plugin = SimpleNamespace(
        __name__="ns", chargeback_register_allocators=hookimpl(lambda register: register(Allocator("ns-even")))
    )
    assert "ns-even" in make_registry(plugin).allocators


# --- Observer hooks in a real run ---------------------------------------------------------

EVEN_RULE = {"id": "even", "priority": 1, "allocate": {"method": "even", "among": ["CC-1", "CC-2"]}}


def test_observers_see_the_final_decisions_of_a_run(tmp_path):
    from chargeback_engine.ledger import DECISION_RECORD_SCHEMA
    from chargeback_engine.testing import line_items, make_engine, make_policy

    seen = []

    class Auditor:
        __name__ = "auditor"

        @hookimpl
        def chargeback_decisions_recorded(self, run_id, decisions):  # type: ignore[no-untyped-def]
            seen.append((run_id, decisions))

    engine = make_engine(make_policy(builtins=True, rules=[EVEN_RULE]), Auditor(), builtins=True)
    result = engine.run([line_items({"BilledCost": "1"})], "2026-10")
    [(run_id, decisions)] = seen
    assert (
        run_id == result.run_id
        and decisions.schema.equals(DECISION_RECORD_SCHEMA)
        and decisions.equals(result.decisions)
    )


def test_an_observer_that_raises_stops_the_run_before_anything_is_written(tmp_path):
    from chargeback_engine.testing import line_items, make_engine, make_policy

    class Auditor:
        __name__ = "auditor"

        @hookimpl
        def chargeback_decisions_recorded(self, run_id, decisions):  # type: ignore[no-untyped-def]
            raise RuntimeError("audit store is down")

    engine = make_engine(make_policy(builtins=True, rules=[EVEN_RULE]), Auditor(), builtins=True)
    with pytest.raises(
        PluginError,
        match=r"^plugin 'auditor' \(registered in code\) raised in "
        r"chargeback_decisions_recorded: RuntimeError: audit store is down;"
        r" this is a bug in the plugin: report it to its authors \(chargeback plugins names its distribution\)$",
    ):
        engine.run([line_items({"BilledCost": "1"})], "2026-10", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
