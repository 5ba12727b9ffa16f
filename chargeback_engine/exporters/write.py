"""Write a run's outputs: every file atomically, ``manifest.json`` last.

Exporters write into a staging directory beside the output directory; each file is then
moved into place with ``os.replace``. A crash leaves either no manifest or the previous
one, never a manifest that describes files that are not there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from chargeback_engine.components import Exporter
from chargeback_engine.engine.runner import (
    RunResult,
    describe,
    file_sha256,
    release_arrow_memory,
)
from chargeback_engine.plugins import Registered, reported

MANIFEST = "manifest.json"


def write_outputs(result: RunResult, out: Path, exporters: Sequence[Registered[Exporter]],
                  progress: Callable[[str], None] = lambda _: None) -> RunResult:
    """Every exporter's files, then the manifest; ``progress`` hears ``write NAME`` as each
    exporter starts, and ``write manifest``."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".chargeback-", dir=out))
    try:
        files = []
        for registered in exporters:
            progress(f"write {registered.component.name}")
            with reported("exporter", registered, registered.component.name):
                files += [Path(f) for f in registered.component.export(result, staging)]
            release_arrow_memory()
        written = []
        for file in sorted(files, key=lambda f: f.name):
            target = out / file.name
            os.replace(file, target)
            written.append(target)
        progress("write manifest")
        manifest = dict(describe(result))
        manifest["outputs"] = [{"file": f.name, "sha256": file_sha256(f)} for f in written]
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return replace(result, outputs=(*written, out / MANIFEST))


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
