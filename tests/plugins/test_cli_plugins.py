"""``chargeback plugins`` and the CLI's uniform handling of library errors."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from chargeback_engine.cli import ChargebackGroup, main
from chargeback_engine.errors import Diagnostic, PluginError, PolicyError

EVEN = """
    from chargeback_engine import hookimpl

    class Even:
        name = "even-split"
        params_schema = {"type": "object"}
        def check(self, params, policy): return []
        def targets(self, params, policy): return frozenset()
        def fields(self, params): return frozenset()
        def resolve(self, params, context): raise NotImplementedError

    @hookimpl
    def chargeback_register_allocators(register):
        register(Even())
"""


def test_plugins_lists_a_plugin_with_its_distribution(install_distribution):
    install_distribution("chargeback-even", "2.0.1", {"cb_even_cli": EVEN}, {"evenly": "cb_even_cli"})
    result = CliRunner().invoke(main, ["--allow-plugin", "evenly", "plugins"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "evenly (chargeback-even 2.0.1)\n  allocators: even-split\n  hooks: chargeback_register_allocators\n"
    )


def test_plugins_json(install_distribution):
    install_distribution("chargeback-even", "2.0.1", {"cb_even_cli": EVEN}, {"evenly": "cb_even_cli"})
    result = CliRunner().invoke(main, ["--allow-plugin", "evenly", "plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
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
    ]


def test_plugins_all_shows_only_builtins_beyond_the_default(install_distribution):
    install_distribution("chargeback-even", "2.0.1", {"cb_even_cli": EVEN}, {"evenly": "cb_even_cli"})
    default = json.loads(CliRunner().invoke(main, ["plugins", "--format", "json"]).stdout)
    everything = json.loads(CliRunner().invoke(main, ["plugins", "--all", "--format", "json"]).stdout)
    assert [p for p in everything if not p["builtin"]] == default
    assert "evenly" in [p["name"] for p in default]
    assert all(p["distribution"] == "chargeback-engine" for p in everything if p["builtin"])


def test_a_broken_plugin_is_one_line_on_stderr_and_exit_1(install_distribution):
    install_distribution(
        "chargeback-broken",
        "0.3.0",
        {"cb_broken_cli": "raise RuntimeError('no licence key')\n"},
        {"broken": "cb_broken_cli"},
    )
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: plugin 'broken' (distribution chargeback-broken 0.3.0) failed to import 'cb_broken_cli': "
        "RuntimeError: no licence key\n"
    )


def test_a_policy_error_prints_its_located_lines_as_they_are():
    @click.group(cls=ChargebackGroup)
    def cli() -> None:
        pass

    @cli.command()
    def validate() -> None:
        raise PolicyError(
            [
                Diagnostic("p.yaml", 3, 5, "$.spec.currency", "'usd' does not match '^[A-Z]{3}$'"),
                Diagnostic("p.yaml", 9, 7, "$.spec.rules[0].id", "duplicate rule id 'a'"),
            ]
        )

    @cli.command()
    def load() -> None:
        raise PluginError("plugin 'x' (registered in code) raised in a hook")

    result = CliRunner().invoke(cli, ["validate"])
    assert (result.exit_code, result.stderr) == (
        1,
        (
            "p.yaml:3:5: $.spec.currency: 'usd' does not match '^[A-Z]{3}$'\n"
            "p.yaml:9:7: $.spec.rules[0].id: duplicate rule id 'a'\n"
        ),
    )
    result = CliRunner().invoke(cli, ["load"])
    assert (result.exit_code, result.stderr) == (1, "Error: plugin 'x' (registered in code) raised in a hook\n")
