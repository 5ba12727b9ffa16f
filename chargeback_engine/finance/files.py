"""Writing finance outputs: each file atomically (temp file + rename), the manifest last.

A reader that sees ``manifest.json`` can trust every file it lists: the manifest carries
each file's SHA-256 and the audit chain head at the time of writing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chargeback_engine.files import write_atomic


def write_bundle(out_dir: Path, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> Path:
    """Write ``files`` under ``out_dir``, then ``manifest.json`` listing them with their hashes."""
    listed = []
    for name, data in sorted(files.items()):
        write_atomic(out_dir / name, data)
        listed.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    document = {**manifest, "files": listed}
    target = out_dir / "manifest.json"
    write_atomic(target, (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    return target
