"""The installed distribution is found through the entry points and listed by `chargeback plugins`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import version

from click.testing import CliRunner

from chargeback_engine.cli import main


def test_chargeback_plugins_lists_the_collectors_with_the_distribution_version():
    result = CliRunner().invoke(main, ["--allow-plugin", "aws", "plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.stdout)
    assert listed["name"] == "aws" and listed["distribution"] == "chargeback-aws"
    assert listed["version"] == version("chargeback-aws")
    assert listed["collectors"] == ["aws-cost-explorer", "aws-data-exports"]


def test_registering_every_plugin_leaves_boto3_unimported():
    """Every command and Engine registers every plugin, so boto3's import cost must wait for collect()."""
    script = textwrap.dedent("""
        import json, sys
        from chargeback_engine import build_registry, get_plugin_manager
        registry = build_registry(get_plugin_manager())
        sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore"))
        print(json.dumps({"collectors": sorted(registry.collectors), "sdk": sdk}))
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(child.stdout)  # the library prints nothing of its own
    assert {"aws-cost-explorer", "aws-data-exports"} <= set(loaded["collectors"])
    assert loaded["sdk"] == []
