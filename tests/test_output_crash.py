"""SIGKILL a real ``chargeback run`` at 100 points while it reruns into an existing
``--out``: after every kill a reader sees one complete set, the old or the new, never a mix.

Two reruns alternate between two inputs that differ in one cost. Both complete sets are
known first (every visible file's digest, the manifest's included), they are checked to
differ in every file, and after each kill the set a reader sees must equal one of them
exactly: a file of the other set, a missing, extra or torn file, or a manifest that does
not list the files beside it all fail, and the failure names each file's generation.

Each run is the real CLI in a process of its own, forked from a server that has imported
the package once (multiprocessing's forkserver), so a kill costs the run, not Python's
start-up; two workers, each with its own ``--out``, share the 100 kills. Writing and
committing take a few percent of a run, so kills drawn over its duration seldom land
there: one kill lands just before each file-system call the run makes from the moment
it creates its generation folder (every write's ``fsync``, each symlink, the ``rename``
that commits, each removal of the previous set), counted on a rerun first; the rest are
drawn uniformly over a whole run's duration (measured under the same load), so they fall
in collection and allocation too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chargeback_engine.engine.outputs import GENERATION_PREFIX
from chargeback_engine.hookspecs import hookimpl

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "acme.yaml"
SAMPLE = REPO / "policies" / "data" / "acme-focus-2026-10.csv"
KILLS = 100
WORKERS = 2
#: The ``os`` calls that change what is on disk; ``pathlib`` and ``shutil`` go through them.
OPERATIONS = ("mkdir", "rename", "replace", "rmdir", "symlink", "unlink", "fsync")
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(
    [
        "chargeback_engine.cli",
        "chargeback_engine.engine.duck",
        "chargeback_engine.exporters.ledger_files",
        "chargeback_aws",
        "chargeback_azure",
        "chargeback_gcp",
    ]
)


def command(source: Path, out: Path) -> list[str]:
    return ["run", "--policy", str(POLICY), "--input", str(source), "--period", "2026-10", "--out", str(out)]


def _count_operations(kill_before: int | None) -> list[int]:
    """Count the file-system calls from the creation of the generation folder on; SIGKILL
    this process just before call number ``kill_before``. The count so far is the list's item."""
    counted = [0]
    numbers: itertools.count[int] | None = None

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal numbers
            if numbers is None and name == "mkdir" and Path(args[0]).name.startswith(GENERATION_PREFIX):
                numbers = itertools.count(1)
            if numbers is not None:
                counted[0] = next(numbers)  # atomic: the hashing thread syncs while exporters write
                if counted[0] == kill_before:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(os, name, call)

    for name in OPERATIONS:
        wrap(name)
    return counted


def _chargeback(args: list[str], kill_before: int | None = None, count_into: str | None = None) -> None:
    from chargeback_engine.cli import main

    sys.stdout = open(os.devnull, "w")
    counted = _count_operations(kill_before)
    try:
        main(args)
    finally:
        if count_into:
            Path(count_into).write_text(str(counted[0]))


#: Starts and joins take turns between the worker threads (the runs still overlap). A
#: forkserver child's exit status is read once from a pipe, and ``Process.start()`` first
#: polls every running child (``multiprocessing.process._cleanup``): a start in one thread
#: and a join in the other reading the same status leave one of them with EOF, which it
#: reports as exit code 255. Seen in about one start in thirty with two workers.
TURNS = threading.Lock()


def chargeback(
    args: list[str], kill_before: int | None = None, count_into: Path | None = None
) -> multiprocessing.process.BaseProcess:
    """``chargeback ARGS`` started in a process forked from the warm server."""
    process = FORKS.Process(target=_chargeback, args=(args, kill_before, str(count_into) if count_into else None))
    with TURNS:
        process.start()
    return process


def finished(process: multiprocessing.process.BaseProcess) -> int | None:
    """Wait for ``process`` to end without reading its status, then read it in turn."""
    multiprocessing.connection.wait([process.sentinel])
    with TURNS:
        process.join()
    return process.exitcode


def complete(args: list[str], count_into: Path | None = None) -> None:
    assert finished(chargeback(args, count_into=count_into)) == 0, args


def visible_set(out: Path) -> str:
    """The run id of the complete set a reader sees in ``out``; fails on any mix."""
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {o["file"]: o["sha256"] for o in manifest["outputs"]}
    for name, digest in listed.items():
        assert "sha256:" + hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    shown = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert shown == {*listed, "manifest.json"}, shown
    return manifest["run_id"]


def seen(out: Path) -> dict[str, str]:
    """What a reader of ``out`` sees: each visible name and the digest of its bytes."""
    digests = {}
    for path in out.iterdir():
        if not path.name.startswith("."):
            digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "dangling"
    return digests


def one_generation(out: Path, sets: dict[str, dict[str, str]], when: str) -> str:
    """The run whose complete set ``out`` shows, file for file; else a failure that says,
    for every visible file, which run's set it belongs to."""
    shown = seen(out)
    for run_id, files in sets.items():
        if shown == files:
            assert visible_set(out) == run_id  # and the manifest lists exactly those bytes
            return run_id
    origin = {
        name: [r for r, files in sets.items() if files.get(name) == d] or ["neither"] for name, d in shown.items()
    }
    missing = sorted(set().union(*sets.values()) - set(shown))
    pytest.fail(f"{when}: not one complete set: {origin}, missing {missing}")


def worker(
    seed: int, folder: Path, sources: list[Path], sets: dict[str, dict[str, str]], kill_points: list[int], kills: int
) -> tuple[list[str], list[str], int]:
    """Kill ``kills`` reruns into one ``--out``: just before each of ``kill_points`` (file-system
    calls), the rest at random times. The run id visible after each, the kinds of kill in the
    same order, and how many kills caught a run while it was writing (its generation folder
    was left behind)."""
    rng = random.Random(seed)
    out = folder / "out"
    started = time.monotonic()
    complete(command(sources[0], out))
    duration = time.monotonic() - started  # a whole run, under the same load as the kills
    visible, kinds, writing = [one_generation(out, sets, "first run")], ["complete"], 0
    points: list[int | None] = [*kill_points, *[None] * (kills - len(kill_points))]
    other = dict(zip(sets, reversed(sources), strict=True))  # the source of the set not visible
    for kill, point in enumerate(points):
        process = chargeback(command(other[visible[-1]], out), kill_before=point)
        if point is None:
            time.sleep(rng.uniform(0, duration))
            process.kill()  # SIGKILL (a no-op when the run finished first)
        exitcode = finished(process)
        assert exitcode == -signal.SIGKILL or point is None, f"call {point} never came: {exitcode}"
        how = f"kill {kill}, " + (f"just before file-system call {point}" if point else "at a random time")
        visible.append(one_generation(out, sets, f"after {how}"))
        kinds.append("call" if point else "time")
        current = os.readlink(out / ".current") if (out / ".current").is_symlink() else None
        writing += any(p.name.startswith(GENERATION_PREFIX) and p.name != current for p in out.iterdir())
    complete(command(sources[1], out))
    visible.append(one_generation(out, sets, "the last run"))
    kinds.append("complete")
    assert [p.name for p in out.iterdir() if p.name.startswith(GENERATION_PREFIX)] == [os.readlink(out / ".current")]
    return visible, kinds, writing


@pytest.mark.slow
def test_sigkill_at_100_points_during_a_rerun_never_shows_a_mixed_set(tmp_path: Path) -> None:
    changed = tmp_path / "changed.csv"
    text = SAMPLE.read_text()
    header, first, rest = text.split("\n", 2)
    assert header.startswith('"BilledCost"') and first.startswith('"')
    changed.write_text("\n".join([header, '"1' + first[1:], rest]))  # the first line's BilledCost, 10,000 more
    sources = [SAMPLE, changed]
    sets, runs = {}, []
    for source in sources:
        probe = tmp_path / f"probe-{source.stem}"
        complete(command(source, probe))
        runs.append(visible_set(probe))
        sets[runs[-1]] = seen(probe)
    old, new = sets.values()
    assert runs[0] != runs[1] and old.keys() == new.keys()
    assert all(old[name] != new[name] for name in old), "a file both sets share could hide a mix"
    calls = tmp_path / "calls"
    complete(command(sources[1], tmp_path / f"probe-{SAMPLE.stem}"), count_into=calls)  # a rerun, counted
    points = list(range(1, int(calls.read_text()) + 1))
    assert 10 <= len(points) < KILLS  # every write, sync, link, commit and removal, then random times

    def work(w: int) -> tuple[list[str], list[str], int]:
        return worker(w, tmp_path / f"w{w}", sources, sets, points[w::WORKERS], KILLS // WORKERS)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(work, range(WORKERS)))
    assert sum(len(kinds) - 2 for _, kinds, _ in results) == KILLS
    for visible, _, _ in results:
        assert visible[-1] == runs[1]  # a run that is not killed commits its own set
    committed = [  # each rerun writes the set not visible, so a change means it had committed
        before != now
        for visible, kinds, _ in results
        for before, now, kind in zip(visible, visible[1:], kinds[1:], strict=False)
        if kind == "call"
    ]
    assert any(committed) and not all(committed)  # kills just before calls fell on both sides of the commit
    assert sum(writing for _, _, writing in results) >= 3  # and while outputs were being written


def test_a_rerun_with_fewer_outputs_leaves_only_its_own_set(tmp_path: Path) -> None:
    from chargeback_engine import Engine

    out = tmp_path / "out"
    Engine(POLICY).run([SAMPLE], "2026-10", out=out)
    (out / ".chargeback-crashed-staging").mkdir()  # as a killed run leaves it
    result = Engine(POLICY, exporters=["summary"]).run([SAMPLE], "2026-10", out=out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["manifest.json", "summary.csv"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".chargeback-")] == [os.readlink(out / ".current")]
    assert visible_set(out) == result.run_id
    assert result.outputs == (out / "summary.csv", out / "manifest.json")


def test_an_unwritable_out_is_found_before_anything_is_read(tmp_path: Path) -> None:
    from chargeback_engine import Engine
    from chargeback_engine.engine.outputs import OutputError

    (tmp_path / "blocker").write_text("a file, not a folder\n")
    with pytest.raises(OutputError, match=r"--out .*blocker/out cannot be created: .*blocker is not a directory"):
        Engine(POLICY).run([tmp_path / "no-such-input.csv"], "2026-10", out=tmp_path / "blocker" / "out")
    with pytest.raises(OutputError, match=r"--out .*blocker is a file; give a directory for the outputs"):
        Engine(POLICY).run([tmp_path / "no-such-input.csv"], "2026-10", out=tmp_path / "blocker")


def _read_only_folder_runner(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only for the command, even for root
    (which ``chmod`` does not stop): a read-only tmpfs mounted on it in a private mount
    namespace (``unshare``), so the host never sees the mount. Skips when neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    prefix = [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"',
    ]
    try:
        probe = subprocess.run([*prefix, str(folder), "touch", str(folder / "probe")], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("running as root without unshare(1): no way to make a folder read-only for this process")
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"running as root and a read-only mount namespace is not permitted here: {probe.stderr.strip()}")
    return [*prefix, str(folder)]


def test_a_read_only_out_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    """Real permissions, not a mocked ``os.access``: the run stops at ``--out`` with one
    sentence before collecting or allocating (``run.start``, logged with ``-v`` once the
    inputs are read and allocation begins, never appears), and nothing is written."""
    locked = tmp_path / "locked"
    locked.mkdir()
    runner = _read_only_folder_runner(locked)
    chargeback = [sys.executable, "-m", "chargeback_engine", "-v"]
    control = subprocess.run([*chargeback, *command(SAMPLE, tmp_path / "writable")], capture_output=True, text=True)
    assert control.returncode == 0 and "run.start" in control.stderr, control.stderr  # what allocating logs
    below = locked / "out"
    for out, problem in [(locked, "is read-only"), (below, f"cannot be created: {locked} is read-only")]:
        done = subprocess.run([*runner, *chargeback, *command(SAMPLE, out)], capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        says = f"Error: --out {out} {problem} for this user; give a directory you can write to"
        assert done.stderr.strip().splitlines() == [says]  # one sentence, and no log line of a run
        assert "run.start" not in done.stderr
    assert list(locked.iterdir()) == []


class _NestedExporter:
    """Writes its file in a subfolder of the directory it is given."""

    name = "nested"
    options_schema: dict = {"type": "object"}

    def export(self, result, directory: Path) -> list[Path]:  # type: ignore[no-untyped-def]
        (directory / "deep").mkdir()
        (directory / "deep" / "nested.txt").write_text(result.run_id)
        return [directory / "deep" / "nested.txt"]


class _NestedPlugin:
    @hookimpl
    def chargeback_register_exporters(self, register) -> None:  # type: ignore[no-untyped-def]
        register(_NestedExporter())


def test_a_file_an_exporter_writes_in_a_subfolder_is_an_output_at_the_top(tmp_path: Path) -> None:
    from chargeback_engine.testing import line_items, make_engine, make_policy

    plugin = _NestedPlugin()
    rules = [{"id": "all", "priority": 1, "allocate": {"method": "direct", "cost_center": "CC-1"}}]
    engine = make_engine(
        make_policy(plugin, builtins=True, rules=rules), plugin, builtins=True, exporters=["summary", "nested"]
    )
    result = engine.run([line_items({"EffectiveCost": "1"})], "2026-10", out=tmp_path / "out")
    assert (tmp_path / "out" / "nested.txt").read_text() == result.run_id
    assert visible_set(tmp_path / "out") == result.run_id


def test_every_output_file_and_both_folders_are_fsynced_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ``fsync`` runs; each call is recorded with the path its descriptor names, so
    the test sees what reached the disk, in order, against the moment ``.current`` moved."""
    from chargeback_engine import Engine

    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst).name == ".current":
            synced.append("commit")
        elif str(Path(src).resolve()) in synced:  # a file synced under a temporary name, renamed into place
            synced.append(str(Path(dst).resolve()))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "out"
    result = Engine(POLICY).run([SAMPLE], "2026-10", out=out)
    generation = (out / os.readlink(out / ".current")).resolve()
    before = synced[: synced.index("commit")]
    assert {generation / path.name for path in result.outputs} <= {Path(p) for p in before}
    assert str(generation) in before  # the folder's entries
    assert str(out.resolve()) in synced[synced.index("commit") :]  # the switch itself
