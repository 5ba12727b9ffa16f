"""The installed distribution is found through the entry points and listed by `chargeback plugins`."""

from __future__ import annotations

import json
from importlib.metadata import version

from click.testing import CliRunner

from chargeback_engine.cli import main


def test_chargeback_plugins_lists_the_collectors_with_the_distribution_version():
    result = CliRunner().invoke(main, ["--allow-plugin", "gcp", "plugins", "--format", "json"])
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.stdout)
    assert listed["name"] == "gcp" and listed["distribution"] == "chargeback-gcp"
    assert listed["version"] == version("chargeback-gcp")
    assert listed["collectors"] == ["gcp-bigquery-billing"]
