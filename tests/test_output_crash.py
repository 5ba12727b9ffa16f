"""SIGKILL a real ``chargeback run`` at 100 random points while it reruns into an existing
``--out``: after every kill the visible outputs are one complete set, never a mix.

Two reruns alternate between two inputs that differ in one cost, so the sets differ in
every file and a mix would show as a file whose digest is not the one its manifest lists.
Each run is the real CLI in a process of its own, forked from a server that has imported
the package once (multiprocessing's forkserver), so a kill costs the run, not Python's
start-up; two workers, each with its own ``--out``, share the 100 kills. Kill points are
drawn uniformly over a whole run's duration (measured first under the same load), so they
fall in collection, allocation, writing and the commit alike.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chargeback_engine.hookspecs import hookimpl

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "acme.yaml"
SAMPLE = REPO / "policies" / "data" / "acme-focus-2026-10.csv"
KILLS = 100
WORKERS = 2
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(
    [
        "chargeback_engine.cli",
        "chargeback_engine.engine.duck",
        "chargeback_engine.exporters.files",
        "chargeback_aws",
        "chargeback_azure",
        "chargeback_gcp",
    ]
)


def command(source: Path, out: Path) -> list[str]:
    return ["run", "--policy", str(POLICY), "--input", str(source), "--period", "2026-10", "--out", str(out)]


def _chargeback(args: list[str]) -> None:
    from chargeback_engine.cli import main

    sys.stdout = open(os.devnull, "w")
    main(args)


def chargeback(args: list[str]) -> multiprocessing.process.BaseProcess:
    """``chargeback ARGS`` started in a process forked from the warm server."""
    process = FORKS.Process(target=_chargeback, args=(args,))
    process.start()
    return process


def complete(args: list[str]) -> None:
    process = chargeback(args)
    process.join()
    assert process.exitcode == 0, args


def visible_set(out: Path) -> str:
    """The run id of the complete set a reader sees in ``out``; fails on any mix."""
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {o["file"]: o["sha256"] for o in manifest["outputs"]}
    for name, digest in listed.items():
        assert "sha256:" + hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    shown = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert shown == {*listed, "manifest.json"}, shown
    return manifest["run_id"]


def worker(seed: int, folder: Path, sources: list[Path], kills: int) -> tuple[list[str], int]:
    """Kill ``kills`` reruns into one ``--out``; the visible run id after each, and how many
    kills caught a run while it was writing (its generation folder was left behind)."""
    rng = random.Random(seed)
    out = folder / "out"
    started = time.monotonic()
    complete(command(sources[0], out))
    duration = time.monotonic() - started  # a whole run, under the same load as the kills
    seen, writing = [visible_set(out)], 0
    for kill in range(kills):
        process = chargeback(command(sources[(kill + 1) % 2], out))
        time.sleep(rng.uniform(0, duration))
        process.kill()  # SIGKILL
        process.join()
        seen.append(visible_set(out))
        current = os.readlink(out / ".current") if (out / ".current").is_symlink() else None
        writing += any(p.name.startswith(".chargeback-") and p.name != current for p in out.iterdir())
    complete(command(sources[1], out))
    seen.append(visible_set(out))
    assert [p.name for p in out.iterdir() if p.name.startswith(".chargeback-")] == [os.readlink(out / ".current")]
    return seen, writing


@pytest.mark.slow
def test_sigkill_at_100_points_during_a_rerun_never_shows_a_mixed_set(tmp_path: Path) -> None:
    changed = tmp_path / "changed.csv"
    text = SAMPLE.read_text()
    header, first, rest = text.split("\n", 2)
    assert header.startswith('"BilledCost"') and first.startswith('"')
    changed.write_text("\n".join([header, '"1' + first[1:], rest]))  # the first line's BilledCost, 10,000 more
    sources = [SAMPLE, changed]
    runs = []
    for source in sources:
        complete(command(source, tmp_path / f"probe-{source.stem}"))
        runs.append(json.loads((tmp_path / f"probe-{source.stem}" / "manifest.json").read_text())["run_id"])
    assert runs[0] != runs[1]

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda w: worker(w, tmp_path / f"w{w}", sources, KILLS // WORKERS), range(WORKERS)))
    for seen, _ in results:
        assert set(seen) <= set(runs)  # every visible set was one complete run's (visible_set checked each file)
        assert seen[-1] == runs[1]  # and a run that is not killed commits its own set
    assert sum(writing for _, writing in results) >= 3  # kills did land while outputs were being written


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
    from chargeback_engine.exporters.write import OutputError

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
