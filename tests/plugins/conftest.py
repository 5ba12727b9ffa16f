"""Fixtures for the plugin-system tests: real distributions with real entry-point metadata."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

InstallDistribution = Callable[..., Path]


@pytest.fixture
def install_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InstallDistribution]:
    """Put a distribution on ``sys.path`` as an installer would: modules plus a ``.dist-info``.

    ``importlib.metadata`` finds its entry points exactly as it finds an installed wheel's.
    """
    created: list[str] = []

    def install(name: str, version: str, modules: dict[str, str], plugins: dict[str, str]) -> Path:
        site = tmp_path / f"site-{name}"
        site.mkdir()
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            created.append(module)
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = "".join(f"{plugin} = {target}\n" for plugin, target in plugins.items())
        (dist_info / "entry_points.txt").write_text(f"[chargeback_engine]\n{lines}", encoding="utf-8")
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        return site

    yield install
    for module in created:
        sys.modules.pop(module, None)
