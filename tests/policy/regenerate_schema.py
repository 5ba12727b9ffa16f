"""Rewrite schemas/policy.v1.schema.json from the live assembly with the built-in plugins.

Run from the repository root: ``python -m tests.policy.regenerate_schema``.
"""

from pathlib import Path

from chargeback_engine.policy.schema import assemble_schema, render_schema
from tests.policy.conftest import load_builtin_registry

if __name__ == "__main__":
    target = Path(__file__).parents[2] / "schemas" / "policy.v1.schema.json"
    target.write_text(render_schema(assemble_schema(load_builtin_registry())), encoding="utf-8")
    print(f"wrote {target}")
