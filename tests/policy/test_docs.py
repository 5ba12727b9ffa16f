"""The policy reference's complete example is a valid policy, so the docs cannot drift."""

from __future__ import annotations

from pathlib import Path

from chargeback_engine import validate
from chargeback_engine.plugins import Registry

REFERENCE = Path(__file__).parents[2] / "docs" / "policy-reference.md"


def test_the_complete_example_in_the_policy_reference_is_valid(tmp_path: Path, builtin_registry: Registry) -> None:
    section = REFERENCE.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    policy = tmp_path / "example.yaml"
    policy.write_text(example, encoding="utf-8")
    (tmp_path / "drivers").mkdir()
    (tmp_path / "drivers" / "cpu_hours.csv").write_text(
        "period,cost_center,quantity\n2026-11,CC-2001,1\n", encoding="utf-8"
    )
    assert [str(d) for d in validate([policy], builtin_registry)] == []
