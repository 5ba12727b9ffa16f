"""Files the product writes and hashes: the one atomic write, the one content digest of a
file and of an Arrow table, and the one manifest format.

An atomic write puts the bytes in a temporary file beside the target, flushes that file to
disk, renames it over the target and flushes the folder, so that after a crash the target
holds the old content or the new, never a part of either, and a rename that returned is kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: The file that lists a set of outputs, written last: a reader that sees it can trust every
#: file it names.
MANIFEST = "manifest.json"


def sync_file(path: Path) -> None:
    """Flush a file's bytes to disk."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (new files, renames) durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path: Path, data: bytes | Callable[[Path], object]) -> None:
    """Write ``data`` to ``path`` atomically and durably; ``data`` is the bytes, or a function
    that writes the file at the path it is given (a Parquet writer, say)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        if isinstance(data, bytes):
            temporary.write_bytes(data)
        else:
            data(temporary)
        sync_file(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    sync_directory(path.parent)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """:func:`write_atomic` of ``table`` as Parquet."""
    write_atomic(path, lambda temporary: pq.write_table(table, temporary))


def file_sha256(path: Path) -> str:
    """``sha256:`` and the hex digest of a file, read in 1 MiB chunks (outputs can be many GB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def table_sha256(table: pa.Table) -> str:
    """``sha256:`` of a table's Arrow IPC stream: its schema and values, batch by batch."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "sha256:" + hashlib.sha256(sink.getvalue()).hexdigest()


def write_manifest(directory: Path, document: Mapping[str, Any], outputs: Iterable[tuple[Path, str]]) -> Path:
    """``manifest.json`` in ``directory``: ``document`` and its ``outputs``, each output's
    ``file`` (relative to ``directory``), ``bytes`` and ``sha256`` (``sha256:<hex>``), by name."""
    listed = sorted(
        (
            {"file": path.relative_to(directory).as_posix(), "bytes": path.stat().st_size, "sha256": digest}
            for path, digest in outputs
        ),
        key=lambda entry: str(entry["file"]),
    )
    text = json.dumps({**document, "outputs": listed}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(directory / MANIFEST, text.encode("utf-8"))
    return directory / MANIFEST
