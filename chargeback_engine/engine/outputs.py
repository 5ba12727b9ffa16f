"""Write a run's outputs so that a reader sees the previous set or the new one, never a mix.

Layout of an output directory (POSIX; the names are what readers open)::

    out/
      manifest.json        -> .current/manifest.json
      allocations.parquet  -> .current/allocations.parquet
      ...                     (one symlink per output)
      .current             -> .chargeback-XXXXXXXX      the committed generation
      .chargeback-XXXXXXXX/                             its files, manifest.json included

Each run writes a complete generation into a new ``.chargeback-*`` folder (every file and
the folder fsynced), then commits it with one atomic ``rename`` of the ``.current``
symlink. A crash before that rename leaves the previous set in place, after it the new
one; nothing in between is ever visible. Stale ``.chargeback-*`` folders (an earlier
generation, or a crashed run's staging) are removed by the next run while it holds a lock
on the folder, so concurrent runs into one folder commit one after the other. A reader that must not see a
commit happen between two of its opens resolves ``.current`` once and reads from there.
"""

from __future__ import annotations

import inspect
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from chargeback_engine.components import Exporter
from chargeback_engine.durable_files import MANIFEST, file_sha256, sync_directory, sync_file, write_manifest
from chargeback_engine.engine.memory import release_arrow_memory
from chargeback_engine.engine.result import RunResult, describe
from chargeback_engine.errors import ChargebackError
from chargeback_engine.plugins import Registered, plugin_fault, reported

#: The symlink naming the committed generation.
CURRENT = ".current"
#: Prefix of generation folders and of temporary symlinks; anything else is left alone.
GENERATION_PREFIX = ".chargeback-"


class OutputError(ChargebackError):
    """The output directory cannot take the run's outputs."""


def check_writable(out: str | Path) -> None:
    """Fail before anything is allocated if ``out`` cannot become an output directory:
    it must be a directory (or creatable as one) that this process may write into."""
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists() or p.is_symlink()), Path("."))
    if not existing.is_dir():
        what = "is a file" if existing == out else f"cannot be created: {existing} is not a directory"
        raise OutputError(f"--out {out} {what}; give a directory for the outputs")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "is read-only" if existing == out else f"cannot be created: {existing} is read-only"
        raise OutputError(f"--out {out} {reason} for this user; give a directory you can write to")


def write_outputs(
    result: RunResult,
    out: Path,
    exporters: Sequence[tuple[Registered[Exporter], Mapping[str, Any]]],
    progress: Callable[[str], None] = lambda _: None,
) -> RunResult:
    """Every exporter's files and the manifest as a new generation, then the commit;
    ``progress`` hears ``write NAME`` as each exporter starts, and ``write manifest``."""
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        _remove_stale(out)
        generation = out / f"{GENERATION_PREFIX}{os.urandom(8).hex()}"
        generation.mkdir()  # not mkdtemp: its 0700 would hide the outputs from other users
        # Each file is synced and hashed while the next exporter writes, not all at the end:
        # at 10M lines the outputs are over 20 GB, and a file just written is in the page cache.
        hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chargeback-sha256")
        committed = False
        try:
            files: list[tuple[Path, Future[str]]] = []
            for registered, options in exporters:
                progress(f"write {registered.component.name}")
                with reported("exporter", registered, registered.component.name):
                    returned = _export(registered.component, result, generation, options)
                paths = [_at_top(path, generation) for path in _written(registered, returned, generation)]
                files += [(path, hashing.submit(_synced_sha256, path)) for path in paths]
                release_arrow_memory()
            progress("write manifest")
            files.sort(key=lambda file: file[0].name)
            write_manifest(generation, describe(result), [(path, digest.result()) for path, digest in files])
            names = [path.name for path, _ in files]
            _commit(out, generation, [*names, MANIFEST])
            committed = True
        finally:
            hashing.shutdown(cancel_futures=True)
            if not committed:
                shutil.rmtree(generation, ignore_errors=True)
        _remove_stale(out)  # the generation just replaced
    return replace(result, outputs=(*(out / name for name in names), out / MANIFEST))


def _export(exporter: Exporter, result: RunResult, directory: Path, options: Mapping[str, Any]) -> Sequence[Path]:
    """An exporter that takes options declares a third parameter, ``options`` (the policy's
    ``spec.exports`` entry without ``exporter``); one that does not is called as before."""
    if "options" in inspect.signature(exporter.export).parameters:
        return exporter.export(result, directory, options=options)  # type: ignore[call-arg]  # the signature, checked above, takes options; the protocol's does not
    return exporter.export(result, directory)


def _written(registered: Registered[Exporter], returned: Any, generation: Path) -> list[Path]:
    """The files an exporter says it wrote, held to its contract: paths of files it wrote
    into the staging folder it was given (a path elsewhere would move someone else's file)."""
    name = registered.component.name
    if isinstance(returned, str | bytes | os.PathLike) or not isinstance(returned, Iterable):
        what = f"returned a {type(returned).__name__}, not a list of the files it wrote"
        raise plugin_fault("exporter", registered, name, what)
    with reported("exporter", registered, name):  # a generator runs the plugin's code here
        items = list(returned)
    paths = []
    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise plugin_fault("exporter", registered, name, f"returned {item!r:.80}, not the path of a file it wrote")
        path = Path(item)
        if not path.resolve().is_relative_to(generation.resolve()):
            raise plugin_fault("exporter", registered, name, f"returned {str(item)!r}, outside the folder it was given")
        if not path.is_file():
            raise plugin_fault("exporter", registered, name, f"returned {path.name!r} but never wrote that file")
        paths.append(path)
    return paths


def _at_top(path: Path, generation: Path) -> Path:
    """Outputs are one flat set of names: a file an exporter wrote in a subfolder moves up."""
    if path.parent == generation:
        return path
    os.replace(path, generation / path.name)
    return generation / path.name


def _commit(out: Path, generation: Path, names: list[str]) -> None:
    """Point ``out/NAME`` at ``.current/NAME`` (a no-op after the first run), then switch
    ``.current`` to ``generation`` in one rename: the moment the new set becomes visible."""
    for name in names:
        link, target = out / name, f"{CURRENT}/{name}"
        if not (link.is_symlink() and os.readlink(link) == target):
            _symlink_over(link, target)
    _symlink_over(out / CURRENT, generation.name)
    sync_directory(out)
    for entry in out.iterdir():  # outputs of the previous set that this run did not write
        if entry.name not in names and entry.is_symlink() and os.readlink(entry).startswith(CURRENT + "/"):
            entry.unlink()


def _symlink_over(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target`` atomically, whatever was there."""
    temporary = link.with_name(f"{GENERATION_PREFIX}link-{os.urandom(6).hex()}")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _remove_stale(out: Path) -> None:
    """Every ``.chargeback-*`` entry but the committed generation: earlier generations,
    staging folders and temporary symlinks left by runs that crashed."""
    current = os.readlink(out / CURRENT) if (out / CURRENT).is_symlink() else None
    for entry in out.iterdir():
        if not entry.name.startswith(GENERATION_PREFIX) or entry.name == current:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Runs into one directory write one after another: an advisory lock on the directory
    itself (POSIX only), so no lock file is left behind."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    descriptor = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _synced_sha256(path: Path) -> str:
    """The file's digest, after its bytes are on disk."""
    sync_file(path)
    return file_sha256(path)
