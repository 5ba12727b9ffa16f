"""A third-party component that raises is reported by name and plugin, and nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chargeback_engine import PluginError, hookimpl
from chargeback_engine.allocators.direct import DirectAllocator
from chargeback_engine.exporters.ledger_files import SummaryExporter
from chargeback_engine.testing import line_items, make_engine, make_policy


class _BrokenAllocator(DirectAllocator):
    name = "broken"

    def resolve(self, params: Any, context: Any) -> Any:
        return {}["cost_center"]  # a plugin's bug: KeyError


class _BrokenExporter(SummaryExporter):
    name = "broken-export"

    def export(self, result: Any, directory: Path) -> Any:
        (directory / "half.csv").write_text("cost_center\n")
        raise OSError("disk full")


class _BrokenPlugin:
    @hookimpl
    def chargeback_register_allocators(self, register) -> None:  # type: ignore[no-untyped-def]
        register(_BrokenAllocator())

    @hookimpl
    def chargeback_register_exporters(self, register) -> None:  # type: ignore[no-untyped-def]
        register(_BrokenExporter())


def _rule(method: str) -> dict[str, Any]:
    return {"id": "all", "priority": 1, "allocate": {"method": method, "cost_center": "CC-1"}}


def test_an_allocator_that_raises_is_named_with_its_plugin(tmp_path: Path) -> None:
    plugin = _BrokenPlugin()
    engine = make_engine(make_policy(plugin, builtins=True, rules=[_rule("broken")]), plugin, builtins=True)
    with pytest.raises(PluginError, match=r"allocator 'broken' of plugin '.+' raised KeyError: 'cost_center'"):
        engine.run([line_items({"EffectiveCost": "1"})], "2026-10", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_exporter_that_raises_leaves_no_file_and_no_manifest(tmp_path: Path) -> None:
    plugin = _BrokenPlugin()
    engine = make_engine(
        make_policy(plugin, builtins=True, rules=[_rule("direct")]),
        plugin,
        builtins=True,
        exporters=["summary", "broken-export"],
    )
    with pytest.raises(PluginError, match=r"exporter 'broken-export' of plugin '.+' raised OSError: disk full"):
        engine.run([line_items({"EffectiveCost": "1"})], "2026-10", out=tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == []
