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
import inspect
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from chargeback_engine.components import Exporter
from chargeback_engine.engine.inputs import file_sha256
from chargeback_engine.engine.memory import release_arrow_memory
from chargeback_engine.engine.result import RunResult, describe
from chargeback_engine.plugins import Registered, reported

MANIFEST = "manifest.json"


def write_outputs(result: RunResult, out: Path, exporters: Sequence[tuple[Registered[Exporter], Mapping[str, Any]]],
                  progress: Callable[[str], None] = lambda _: None) -> RunResult:
    """Every exporter's files, then the manifest; ``progress`` hears ``write NAME`` as each
    exporter starts, and ``write manifest``."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".chargeback-", dir=out))
    # Each file is hashed while the next exporter writes, not all at the end: at 10M lines
    # the outputs are over 20 GB, and a file just written is still in the page cache.
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chargeback-sha256")
    try:
        files: list[tuple[Path, Future[str]]] = []
        for registered, options in exporters:
            progress(f"write {registered.component.name}")
            with reported("exporter", registered, registered.component.name):
                paths = [Path(f) for f in _export(registered.component, result, staging, options)]
            files += [(path, hashing.submit(file_sha256, path)) for path in paths]
            release_arrow_memory()
        progress("write manifest")
        files.sort(key=lambda file: file[0].name)
        outputs = [{"file": path.name, "sha256": digest.result()} for path, digest in files]
        written = []
        for path, _ in files:
            os.replace(path, out / path.name)
            written.append(out / path.name)
        manifest = dict(describe(result))
        manifest["outputs"] = outputs
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    finally:
        hashing.shutdown(cancel_futures=True)
        shutil.rmtree(staging, ignore_errors=True)
    return replace(result, outputs=(*written, out / MANIFEST))


def _export(exporter: Exporter, result: RunResult, directory: Path, options: Mapping[str, Any]) -> Sequence[Path]:
    """An exporter that takes options declares a third parameter, ``options`` (the policy's
    ``spec.exports`` entry without ``exporter``); one that does not is called as before."""
    if "options" in inspect.signature(exporter.export).parameters:
        return exporter.export(result, directory, options=options)  # type: ignore[call-arg]
    return exporter.export(result, directory)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
