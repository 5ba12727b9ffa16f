"""The plugin API is one module, documented name for name, and the cloud plugins use nothing else."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import chargeback_engine.plugin

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "writing-plugins.md"
STABLE = {"chargeback_engine", "chargeback_engine.plugin", "chargeback_engine.testing"}
DISTRIBUTIONS = (
    "plugins/chargeback-aws/chargeback_aws",
    "plugins/chargeback-azure/chargeback_azure",
    "plugins/chargeback-gcp/chargeback_gcp",
    "tests/plugins/fixtures/chargeback-acme/chargeback_acme",  # the example in docs/writing-plugins.md
)


def documented_names() -> set[str]:
    """The backquoted names of the bullet list under ``## The plugin API``."""
    section = DOC.read_text(encoding="utf-8").split("\n## The plugin API\n", 1)[1].split("\n## ", 1)[0]
    bullets = [line.split(":", 1)[1] for line in section.splitlines() if line.startswith("- **")]
    return {name for line in bullets for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", line)}


def test_the_facade_and_its_page_name_the_same_things() -> None:
    exported = set(chargeback_engine.plugin.__all__)
    assert len(exported) == len(chargeback_engine.plugin.__all__), "__all__ repeats a name"
    documented = documented_names()
    assert documented - exported == set(), "documented in writing-plugins.md but not in chargeback_engine.plugin"
    assert exported - documented == set(), "in chargeback_engine.plugin but not documented in writing-plugins.md"


def test_every_facade_name_is_defined() -> None:
    missing = [name for name in chargeback_engine.plugin.__all__ if not hasattr(chargeback_engine.plugin, name)]
    assert missing == []


def _is_module(package: str, name: str) -> bool:
    folder = ROOT.joinpath(*package.split("."))
    return (folder / name).is_dir() or (folder / f"{name}.py").is_file()


def imported_modules(source: str) -> set[str]:
    """Every ``chargeback_engine`` module a source file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from chargeback_engine import focus` imports a module, not a name of the package
            found |= {f"{node.module}.{a.name}" for a in node.names if _is_module(node.module, a.name)}
    return {m for m in found if m == "chargeback_engine" or m.startswith("chargeback_engine.")}


def test_the_scan_sees_internal_imports() -> None:
    source = (
        "from chargeback_engine import focus, hookimpl, Engine\nif 1:\n    import chargeback_engine.collect.retry\n"
    )
    assert imported_modules(source) == {
        "chargeback_engine",
        "chargeback_engine.focus",
        "chargeback_engine.collect.retry",
    }


@pytest.mark.parametrize("package", DISTRIBUTIONS)
def test_plugins_import_only_the_stable_modules(package: str) -> None:
    modules = sorted((ROOT / package).glob("*.py"))
    assert modules, f"no modules under {package}"
    internal = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in modules
        for module in imported_modules(path.read_text(encoding="utf-8"))
        if module not in STABLE
    }
    assert internal == set()


def test_an_engine_with_every_builtin_plugin_leaves_insight_and_finance_unimported() -> None:
    """The notifiers are a built-in plugin of their own: registering them costs no insight stack."""
    script = textwrap.dedent("""
        import json, sys
        from chargeback_engine import build_registry, get_plugin_manager
        registry = build_registry(get_plugin_manager())
        stack = sorted(m for m in sys.modules if m.split(".")[:2] in (["chargeback_engine", "insight"], ["chargeback_engine", "finance"]))
        print(json.dumps({"notifiers": sorted(registry.notifiers), "stack": stack}))
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(child.stdout.splitlines()[-1])  # unconfigured structlog logs to stdout first
    assert loaded == {"notifiers": ["email", "json", "webhook"], "stack": []}


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [("RunResult", "result.RunResult"), ("RunInput", "result.InputInfo"), ("RunStore", "store.RunStore")],
)
def test_the_run_protocols_describe_what_the_engine_gives_exporters(protocol: str, implementation: str) -> None:
    module, name = implementation.split(".")
    concrete = getattr(importlib.import_module(f"chargeback_engine.engine.{module}"), name)
    members = {name for name in vars(getattr(chargeback_engine.plugin, protocol)) if not name.startswith("_")}
    fields = {f.name for f in dataclasses.fields(concrete)} if dataclasses.is_dataclass(concrete) else set()
    provided = fields | set(dir(concrete))
    assert members and members <= provided, f"{implementation} lacks {sorted(members - provided)}"
