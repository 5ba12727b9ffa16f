"""Writing finance outputs: each file atomically (temp file + rename), the manifest last.

A reader that sees ``manifest.json`` can trust every file it lists: the manifest carries
each file's SHA-256 and the audit chain head at the time of writing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """Text for a CSV cell; text that a spreadsheet would run as a formula gets a ``'`` prefix."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_bytes(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], amount_columns: Iterable[int] = ()) -> bytes:
    """CSV with text cells made safe; amounts (by column index) are written as they are."""
    amounts = set(amount_columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else str(v) if i in amounts else safe_cell(v) for i, v in enumerate(row)])
    return buffer.getvalue().encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


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
