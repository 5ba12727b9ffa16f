"""A real third-party distribution, pip-installed into a fresh virtual environment.

The environment sees this project as it is installed for the test run (its site-packages
are added with ``site.addsitedir``, which also runs the editable-install hooks), and
``chargeback-acme`` from ``fixtures/`` is installed with pip, so its entry points come
from real ``.dist-info`` metadata written by a real build backend (setuptools).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ACME_SOURCE = Path(__file__).parent / "fixtures" / "chargeback-acme"


@dataclass(frozen=True)
class Environment:
    python: Path
    marker: Path

    def chargeback(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.marker.unlink(missing_ok=True)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBACK_PLUGINS_")}
        environ.update(env, CHARGEBACK_ACME_IMPORT_MARKER=str(self.marker))
        return subprocess.run([str(self.python), "-m", "chargeback_engine", *args],
                              capture_output=True, text=True, env=environ, check=False)


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Environment:
    root = tmp_path_factory.mktemp("third-party")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    here = [*site.getsitepackages(), site.getusersitepackages()]
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in here if Path(path).is_dir())
    (venv_site / "zz_test_run_environment.pth").write_text(lines, encoding="utf-8")
    source = shutil.copytree(ACME_SOURCE, root / "chargeback-acme")  # builds write into the source tree
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(source)], check=True, capture_output=True)
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
            "hooks": ["chargeback_register_allocators", "chargeback_register_collectors"],
            "collectors": ["acme-csv"],
            "allocators": ["acme-weighted"],
            "exporters": [],
        }
    ]
    assert acme.marker.exists()
    text = acme.chargeback("plugins")
    assert "acme (chargeback-acme 1.2.0)\n  collectors: acme-csv\n  allocators: acme-weighted\n" in text.stdout


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
