"""Fixtures for the policy tests: a registry holding only a small test plugin.

The test plugin's allocators are deliberately tiny but real components: they declare
schemas, check their parameters with the kernel's public helpers, and name their targets,
so every layer of validation runs exactly as it does for the built-in allocators.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from chargeback_engine import hookimpl
from chargeback_engine.components import AllocationContext, Amortize, Finding, Resolution, Shares
from chargeback_engine.hookspecs import ENTRY_POINT_GROUP
from chargeback_engine.plugins import Registry, build_registry, get_plugin_manager
from chargeback_engine.policy.checks import unknown_cost_centers
from chargeback_engine.policy.policy_model import AllocationSpec
from chargeback_engine.policy.schema import ALLOCATE_REF, COST_CENTER_ID_REF, WHEN_REF
from chargeback_engine.testing import make_registry


class _TestAllocator:
    """What every test allocator shares: it reads no fields of the match key."""

    def fields(self, params: Mapping[str, Any]) -> frozenset[str]:
        return frozenset()


class ToOne(_TestAllocator):
    """``{method: to-one, cost_center: X}``: everything to one cost center."""

    name = "to-one"
    params_schema = {
        "type": "object",
        "properties": {"method": {"const": "to-one"}, "cost_center": dict(COST_CENTER_ID_REF)},
        "required": ["cost_center"],
        "additionalProperties": False,
    }

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return unknown_cost_centers(policy, params["cost_center"], ("cost_center",))

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset({params["cost_center"]})

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        return Shares({params["cost_center"]: Decimal(1)}, "to one cost center")


class Weights(_TestAllocator):
    """``{method: weights, splits: {X: 0.5, ...}}``: fixed shares that must sum to 1."""

    name = "weights"
    params_schema = {
        "type": "object",
        "properties": {
            "method": {"const": "weights"},
            "splits": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}, "minProperties": 1},
        },
        "required": ["splits"],
        "additionalProperties": False,
    }

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        findings = unknown_cost_centers(policy, params["splits"], ("splits",))
        total = sum((Decimal(v) for v in params["splits"].values()), Decimal(0))
        if total != 1:
            findings.append(Finding(("splits",), f"splits sum to {total}, not exactly 1"))
        return findings

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset(params["splits"])

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        return Shares({cc: Decimal(w) for cc, w in params["splits"].items()}, "fixed weights")


class Driven(_TestAllocator):
    """``{method: driven, driver: D}``: by a usage driver (the kernel checks the name)."""

    name = "driven"
    params_schema = {
        "type": "object",
        "properties": {"method": {"const": "driven"}, "driver": {"type": "string"}, "filter": dict(WHEN_REF)},
        "required": ["driver"],
        "additionalProperties": False,
    }

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return []

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        return Shares(context.driver(params["driver"]), "by driver")


class Later(_TestAllocator):
    """``{method: later, months: N, then: {...}}``: a nested allocate block."""

    name = "later"
    params_schema = {
        "type": "object",
        "properties": {
            "method": {"const": "later"},
            "months": {"type": "integer", "minimum": 1, "maximum": 60},
            "then": dict(ALLOCATE_REF),
        },
        "required": ["months", "then"],
        "additionalProperties": False,
    }

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        return []

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        return frozenset()

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        return Amortize(params["months"], context.resolve(AllocationSpec.from_document(params["then"])), "later")


class Broken(_TestAllocator):
    """An allocator whose check() raises, to prove the kernel names it instead of crashing."""

    name = "broken"
    params_schema = {"type": "object", "properties": {"method": {"const": "broken"}}, "additionalProperties": False}

    def check(self, params: Mapping[str, Any], policy: Any) -> Iterable[Finding]:
        raise RuntimeError("boom")

    def targets(self, params: Mapping[str, Any], policy: Any) -> frozenset[str]:
        raise RuntimeError("boom")

    def resolve(self, params: Mapping[str, Any], context: AllocationContext) -> Resolution:
        raise RuntimeError("boom")


class FileCollector:
    name = "test-files"
    config_schema = {
        "type": "object",
        "properties": {"collector": {"const": "test-files"}, "path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def collect(self, config: Mapping[str, Any], period: Any) -> Iterable[Any]:
        return []


class PolicyTestPlugin:
    @hookimpl
    def chargeback_register_allocators(self, register: Callable[[Any], None]) -> None:
        for allocator in (ToOne(), Weights(), Driven(), Later(), Broken()):
            register(allocator)

    @hookimpl
    def chargeback_register_collectors(self, register: Callable[[Any], None]) -> None:
        register(FileCollector())


@pytest.fixture
def registry() -> Registry:
    return make_registry(PolicyTestPlugin())


def load_builtin_registry() -> Registry:
    """Only the plugins this distribution itself declares, whatever else is installed."""
    names = [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist and ep.dist.name == "chargeback-engine"]
    return build_registry(get_plugin_manager(allow=names))


@pytest.fixture(scope="session")
def builtin_registry() -> Registry:
    return load_builtin_registry()


VALID_POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata:
  name: acme
  version: "2026.11.1"
  effective: {from: 2026-11-01}
spec:
  currency: USD
  cost_column: EffectiveCost
  tags:
    normalize: {keys: lower, strip: true}
    aliases: {costcenter: cost-center}
  cost_centers:
    - {id: CC-2001, name: Backend}
    - {id: CC-2002, name: Frontend}
    - {id: CC-9000, name: Shared platform, shared: true}
  drivers:
    cpu-hours:
      inline:
        - {period: 2026-11, cost_center: CC-2001, quantity: 10}
  rules:
    - id: prod-backend
      priority: 100
      when: {tags.environment: production, tags.team: backend}
      allocate: {method: to-one, cost_center: CC-2001}
    - id: platform
      priority: 90
      when: {tags.team: platform}
      allocate: {method: weights, splits: {CC-2001: 0.40, CC-2002: 0.60}}
    - id: databases
      priority: 80
      when: {ServiceName: {in: [Amazon RDS]}}
      allocate: {method: driven, driver: cpu-hours}
    - id: upfront
      priority: 70
      when: {ChargeCategory: Purchase}
      allocate: {method: later, months: 12, then: {method: to-one, cost_center: CC-9000}}
  stages:
    - {pool: CC-9000, allocate: {method: weights, splits: {CC-2001: 0.5, CC-2002: 0.5}}}
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a policy file (dedented) into the test's folder and return its path."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
