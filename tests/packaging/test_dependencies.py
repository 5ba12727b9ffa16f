"""What a plain install pulls in, and that every imported package is declared.

The installed distribution's metadata (Requires-Dist) is what pip reads, so these tests
read it rather than pyproject.toml: a plain ``pip install chargeback-engine`` gets exactly
the requirements without an ``extra ==`` marker.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from chargeback_engine.errors import ChargebackError

ROOT = Path(__file__).resolve().parents[2]


def requirements(distribution: str) -> dict[str | None, set[str]]:
    """Requirement names of an installed distribution by extra (None: a plain install)."""
    by_extra: dict[str | None, set[str]] = {}
    for text in requires(distribution) or []:
        requirement = Requirement(text)
        extra = next(
            (
                e
                for e in ("insight", "postgres", "spark", "test", "billing")
                if requirement.marker and requirement.marker.evaluate({"extra": e})
            ),
            None,
        )
        by_extra.setdefault(extra, set()).add(_normal(requirement.name))
    return by_extra


def _normal(name: str) -> str:
    """PEP 503 normalised name: ruamel.yaml, ruamel_yaml and ruamel-yaml are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_a_plain_install_does_not_pull_statsmodels():
    plain = requirements("chargeback-engine")[None]
    assert {"statsmodels", "scipy", "pandas"}.isdisjoint(plain)
    assert "statsmodels" in requirements("chargeback-engine")["insight"]


def test_the_test_extra_brings_the_insight_extra():
    assert "statsmodels" in requirements("chargeback-engine")["test"]  # the build flattens chargeback-engine[insight]
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"chargeback-engine[insight]"' in pyproject


def test_gcp_billing_client_is_an_extra_of_the_plugin():
    gcp = requirements("chargeback-gcp")
    assert "google-cloud-billing" not in gcp[None]
    assert "google-cloud-billing" in gcp["billing"]
    assert "requests" in gcp[None]


def _imported_top_levels(package: Path) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize(
    ("distribution", "package"),
    [
        ("chargeback-engine", ROOT / "chargeback_engine"),
        ("chargeback-aws", ROOT / "plugins/chargeback-aws/chargeback_aws"),
        ("chargeback-azure", ROOT / "plugins/chargeback-azure/chargeback_azure"),
        ("chargeback-gcp", ROOT / "plugins/chargeback-gcp/chargeback_gcp"),
    ],
)
def test_every_imported_package_is_declared(distribution, package):
    """Each third-party import comes from a distribution the package requires (plain or through an extra)."""
    declared = set().union(*requirements(distribution).values()) | {distribution}
    if distribution != "chargeback-engine":
        declared |= set().union(*requirements("chargeback-engine").values())
    providers = packages_distributions()
    undeclared = {}
    for name in sorted(_imported_top_levels(package) - {package.name}):
        # An editable install does not list its packages; its import name is its distribution name.
        dists = {_normal(d) for d in providers.get(name, [])} | {_normal(name)}
        if not dists & declared:  # a namespace package (google) is fine when one of its distributions is declared
            undeclared[name] = sorted(dists)
    assert not undeclared, f"{distribution} imports packages it does not declare: {undeclared}"


def test_forecasting_without_the_extra_says_how_to_install_it(monkeypatch):
    from chargeback_engine.insight.extra import statsmodels

    monkeypatch.setitem(sys.modules, "statsmodels.tsa.seasonal", None)  # what Python does for a missing module
    with pytest.raises(ChargebackError, match=r"pip install 'chargeback-engine\[insight\]'"):
        statsmodels("statsmodels.tsa.seasonal")
