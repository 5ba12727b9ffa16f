"""A real third-party distribution, pip-installed into a fresh virtual environment.

The environment sees this project as it is installed for the test run (its site-packages
are added with ``site.addsitedir``, which also runs the editable-install hooks), and
``chargeback-acme`` from ``fixtures/`` is built and installed into it by pip (offline, with
``--no-build-isolation``), so its entry points come from real ``.dist-info`` metadata
written by a real build backend (hatchling, from the ``test`` extra).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.sessions import checked

ACME_SOURCE = Path(__file__).parent / "fixtures" / "chargeback-acme"


@dataclass(frozen=True)
class Environment:
    python: Path
    marker: Path

    def chargeback(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.marker.unlink(missing_ok=True)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBACK_PLUGINS_")}
        environ.update(env, CHARGEBACK_ACME_IMPORT_MARKER=str(self.marker))
        return subprocess.run(
            [str(self.python), "-m", "chargeback_engine", *args],
            capture_output=True,
            text=True,
            env=environ,
            check=False,
        )


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    root = tmp_path_factory.mktemp("third-party")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    here = [*site.getsitepackages(), site.getusersitepackages()]
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in here if Path(path).is_dir())
    (venv_site / "zz_test_run_environment.pth").write_text(lines, encoding="utf-8")
    source = shutil.copytree(ACME_SOURCE, root / "chargeback-acme")  # builds write into the source tree
    pip = [sys.executable, "-m", "pip", "--python", str(python)]  # this run's pip, installing into the venv
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source)],
        check=True,
        capture_output=True,
    )
    assert (venv_site / "chargeback_acme-1.2.0.dist-info" / "entry_points.txt").is_file()
    return Environment(python, root / "acme-imported")


def test_the_distribution_shows_in_chargeback_plugins(acme):
    result = acme.chargeback("plugins", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [p for p in json.loads(result.stdout) if p["name"] == "acme"] == [
        {
            "name": "acme",
            "distribution": "chargeback-acme",
            "version": "1.2.0",
            "builtin": False,
            "hooks": [
                "chargeback_register_allocators",
                "chargeback_register_collectors",
                "chargeback_register_exporters",
            ],
            "collectors": ["acme-csv"],
            "allocators": ["acme-weighted"],
            "exporters": ["acme-journal"],
            "notifiers": [],
            "enrichers": [],
        }
    ]
    assert acme.marker.exists()


def test_the_documented_listing_is_what_the_installed_distribution_prints(acme):
    """docs/writing-plugins.md's ``chargeback plugins`` sample, run where chargeback-acme is installed.

    This environment also holds this repository's other plugins, so only ``acme`` is allowed:
    the reader's environment of the page has no other.
    """
    [block] = checked("docs/writing-plugins.md", "tests/plugins/test_third_party_distribution.py")
    command, _, documented = block.partition("\n")
    assert command.startswith("$ chargeback ")
    result = acme.chargeback(*shlex.split(command)[2:], CHARGEBACK_PLUGINS_ALLOW="acme")
    assert result.returncode == 0, result.stderr
    assert result.stdout == documented


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--allow-plugin", "someone-else"], {}),
        ([], {"CHARGEBACK_PLUGINS_ALLOW": "someone-else"}),
        (["--block-plugin", "acme"], {}),
        ([], {"CHARGEBACK_PLUGINS_BLOCK": "acme"}),
    ],
    ids=["allow-flag", "allow-env", "block-flag", "block-env"],
)
def test_an_excluded_plugin_is_never_imported(acme, args, env):
    result = acme.chargeback(*args, "plugins", "--all", "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    assert "acme" not in [p["name"] for p in json.loads(result.stdout)]
    assert not acme.marker.exists()


POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: acme-weighted-demo, version: "1", effective: {from: 2026-10-01}}
spec:
  currency: USD
  cost_centers:
    - {id: CC-1, name: Web}
    - {id: CC-2, name: Data}
  rules:
    - id: platform-weighted
      priority: 100
      when: {tags.team: platform}
      allocate: {method: acme-weighted, weights: {CC-1: 3, CC-2: 1}}
"""

POLICY_TEST = """\
cases:
  - name: platform cost is split 3:1 to the last digit
    period: 2026-10
    line_items:  # each line splits on its own; leftover units go to the largest remainder
      - {EffectiveCost: "100.000000000000000001", Tags: {team: platform}}  # 75.000000000000000001 + 25 (the larger remainder)
      - {EffectiveCost: "-0.000000000000000002", Tags: {team: platform}}   # -0.000000000000000001 each (a tie: this line's rotation)
    expect: {CC-1: "75.000000000000000000", CC-2: "24.999999999999999999"}
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "acme.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "acme_test.yaml").write_text(POLICY_TEST, encoding="utf-8")
    return tmp_path


def test_a_policy_validates_and_allocates_with_the_plugins_allocator(acme, policy_dir):
    validated = acme.chargeback("validate", str(policy_dir))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    tested = acme.chargeback("test", "--fail-on-empty", str(policy_dir))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines() == [
        f"PASS  {policy_dir / 'acme_test.yaml'}: platform cost is split 3:1 to the last digit",
        "1 passed, 0 failed",
    ]


def test_the_plugins_check_reports_located_errors(acme, policy_dir):
    (policy_dir / "acme.yaml").write_text(POLICY.replace("CC-2: 1}", "CC-9: 1}"), encoding="utf-8")
    result = acme.chargeback("validate", str(policy_dir / "acme.yaml"))
    assert result.returncode == 1
    assert (
        result.stdout
        == f"{policy_dir / 'acme.yaml'}:13:66: $.spec.rules[0].allocate.weights.CC-9: unknown cost center 'CC-9'\n"
    )


def test_a_policy_needing_a_blocked_plugin_fails_without_importing_it(acme, policy_dir):
    result = acme.chargeback("--block-plugin", "acme", "test", str(policy_dir))
    assert result.returncode == 1
    assert "acme-weighted" in result.stderr and "Traceback" not in result.stderr
    assert not acme.marker.exists()
