"""Writing finance outputs: each file atomically, the manifest last.

A reader that sees ``manifest.json`` can trust every file it lists: the manifest carries
each file's SHA-256 and the audit chain head at the time of writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chargeback_engine.durable_files import file_sha256, write_atomic, write_manifest


def write_bundle(out_dir: Path, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> Path:
    """Write ``files`` under ``out_dir``, then ``manifest.json`` listing them with their hashes."""
    for name, data in sorted(files.items()):
        write_atomic(out_dir / name, data)
    return write_manifest(out_dir, manifest, [(out_dir / name, file_sha256(out_dir / name)) for name in files])
