"""The hostile corpus, plugins: every way a plugin can break its contract ends in one
sentence that names the component and its plugin and says what to do, exit 1, no traceback.

The misbehaving components are in :mod:`tests.hostile.hostile_plugin`, installed for each
case as a real distribution (a ``.dist-info`` with an entry point on ``sys.path``), so the
real ``chargeback`` command finds it as it finds any plugin a user installed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine.cli import main
from chargeback_engine.insight import write_sample

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "policies" / "data" / "acme-focus-2026-10.csv"
BUG = "this is a bug in the plugin: report it to its authors (chargeback plugins names its distribution)"


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # builds the inputs in a folder, returns the command line
    says: tuple[str, ...]
    code: int = 1
    never: tuple[str, ...] = ()


def _policy(folder: Path, allocate: dict, **spec: object) -> Path:
    document = {
        "apiVersion": "chargeback/v1",
        "kind": "AllocationPolicy",
        "metadata": {"name": "hostile", "version": "1", "effective": {"from": "2026-01-01"}},
        "spec": {
            "currency": "USD",
            "cost_column": "BilledCost",
            "cost_centers": [{"id": "CC-1", "name": "One"}, {"id": "CC-2", "name": "Two"}],
            "rules": [{"id": "all", "priority": 1, "allocate": allocate}],
            **spec,
        },
    }
    path = folder / "policy.yaml"
    path.write_text(json.dumps(document, indent=2))  # JSON is YAML
    return path


def _run(folder: Path, policy: Path, *, sample: bool = True) -> list[str]:
    given = ["--input", str(SAMPLE)] if sample else []
    return ["run", "--policy", str(policy), *given, "--period", "2026-10", "--out", str(folder / "out")]


def collector(returns: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        policy = _policy(
            folder,
            {"method": "direct", "cost_center": "CC-1"},
            sources=[{"collector": "hostile-source", "returns": returns}],
        )
        return _run(folder, policy, sample=False)

    return setup


def allocator(**params: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        return _run(folder, _policy(folder, {"method": "hostile", **params}))

    return setup


def validated(**params: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        return ["validate", str(_policy(folder, {"method": "hostile", **params}))]

    return setup


def staged(**params: str) -> Callable[[Path], list[str]]:
    """A shared pool whose stage uses the hostile method: ``validate`` asks it for its targets."""

    def setup(folder: Path) -> list[str]:
        policy = _policy(folder, {"method": "direct", "cost_center": "CC-1"})
        document = json.loads(policy.read_text())
        document["spec"]["cost_centers"].append({"id": "POOL", "name": "Pool", "shared": True})
        document["spec"]["stages"] = [{"pool": "POOL", "allocate": {"method": "hostile", **params}}]
        policy.write_text(json.dumps(document, indent=2))
        return ["validate", str(policy)]

    return setup


def exporter(returns: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        exports = [{"exporter": "hostile-export", "returns": returns}]
        return _run(folder, _policy(folder, {"method": "direct", "cost_center": "CC-1"}, exports=exports))

    return setup


def enricher(returns: str) -> Callable[[Path], list[str]]:
    def setup(folder: Path) -> list[str]:
        enrich = {"sources": [{"enricher": "hostile-inventory", "returns": returns}], "cache": str(folder / "cache")}
        policy = _policy(folder, {"method": "direct", "cost_center": "CC-1"}, enrich=enrich)
        return ["enrich", "--policy", str(policy), "--period", "2026-10"]

    return setup


def notifier(returns: str) -> Callable[[Path], list[str]]:
    """``alerts check`` through the hostile notifier, beside a working one that must still be sent."""

    def setup(folder: Path) -> list[str]:
        write_sample(folder / "runs")
        (folder / "notifiers.yaml").write_text(
            f"notifiers: [{{type: hostile-notify, id: finance-chat, returns: {returns}}}, {{type: json, stream: log}}]\n"
        )
        return ["alerts", "check", "--as-of", "2026-10-21", "--notifiers", str(folder / "notifiers.yaml")]

    return setup


def tags_notified(folder: Path) -> list[str]:
    """``report tags --notify`` on a run of the bundled policy, through the hostile notifier and a working one."""
    shutil.copytree(REPO / "policies", folder / "policies")
    policy = folder / "policies" / "acme.yaml"
    aliases = "    aliases: {costcenter: cost-center}\n"
    policy.write_text(policy.read_text().replace(aliases, aliases + "    required: [cost-center]\n"))
    ran = CliRunner().invoke(main, [*_run(folder, policy)[:-2], "--out", str(folder / "run")])
    assert ran.exit_code == 0, ran.output
    (folder / "notifiers.yaml").write_text(
        "notifiers: [{type: hostile-notify, id: finance-chat}, {type: json, stream: log}]\n"
    )
    return [
        "report",
        "tags",
        "--run",
        str(folder / "run"),
        "--policy",
        str(policy),
        "--notify",
        str(folder / "notifiers.yaml"),
    ]


CASES = [
    # collectors
    Case(
        "collector raises",
        collector("raise"),
        ("collector 'hostile-source' of plugin 'hostile' raised ConnectionResetError: the billing API hung up", BUG),
    ),
    Case(
        "collector returns None",
        collector("none"),
        ("collector 'hostile-source' of plugin 'hostile' raised TypeError: 'NoneType' object is not iterable", BUG),
    ),
    Case(
        "collector returns dicts",
        collector("dicts"),
        ("collector 'hostile-source' of plugin 'hostile' returned a dict where a CollectedSource belongs", BUG),
    ),
    Case(
        "collector's table is a list",
        collector("list-table"),
        ("collector 'hostile-source' of plugin 'hostile' returned a list where a CollectedSource belongs", BUG),
    ),
    Case(
        "collector's table has a text cost",
        collector("text-cost"),
        (
            "collector 'hostile-source' of plugin 'hostile' returned source 'hostile' whose column BilledCost"
            " (string) cannot be read as decimal128(38, 18): The string 'twelve' is not a valid decimal128 number",
            BUG,
        ),
    ),
    # allocators, at validation
    Case(
        "allocator check raises",
        validated(fails_in="check"),
        (
            "$.spec.rules[0].allocate: allocator 'hostile' of plugin 'hostile' failed to check its parameters:"
            " AttributeError",
            BUG,
        ),
    ),
    Case(
        "allocator check returns strings",
        validated(fails_in="check-returns"),
        (
            "allocator 'hostile' of plugin 'hostile' returned ['this is not a finding'] from check(), not a list of"
            " Findings",
            BUG,
        ),
    ),
    Case(
        "allocator targets returns None",
        staged(fails_in="targets"),
        (
            "$.spec.stages[0].allocate: allocator 'hostile' of plugin 'hostile' failed to name its targets: TypeError",
            BUG,
        ),
    ),
    # allocators, during the run
    Case(
        "allocator fields raises",
        allocator(fails_in="fields"),
        ("allocator 'hostile' of plugin 'hostile' raised KeyError: 'weights'", BUG),
    ),
    Case(
        "allocator fields are not names",
        allocator(fails_in="fields-returns"),
        ("allocator 'hostile' of plugin 'hostile' returned fields [42], not column names", BUG),
    ),
    Case(
        "allocator resolve raises",
        allocator(returns="raise"),
        ("allocator 'hostile' of plugin 'hostile' raised ZeroDivisionError: division by zero", BUG),
    ),
    Case(
        "allocator returns a dict",
        allocator(returns="dict"),
        ("allocator 'hostile' of plugin 'hostile' returned a dict, not Shares, DirectCostBasis or Amortize", BUG),
    ),
    Case(
        "allocator's weights are a list",
        allocator(returns="list-weights"),
        ("allocator 'hostile' of plugin 'hostile' returned Shares whose weights are a list, not a mapping", BUG),
    ),
    Case(
        "allocator returns all-zero weights",
        allocator(returns="zero"),
        ("rule 'all' (method 'hostile' of plugin 'hostile') returned unusable shares: every weight is zero",),
    ),
    Case(
        "allocator returns a NaN weight",
        allocator(returns="nan"),
        (
            "rule 'all' (method 'hostile' of plugin 'hostile') returned unusable shares: weight of 'CC-1' is"
            " Decimal('NaN')",
        ),
    ),
    Case(
        "allocator returns float weights",
        allocator(returns="float"),
        ("rule 'all' (method 'hostile' of plugin 'hostile') returned unusable shares: weight of 'CC-1' is 0.5",),
    ),
    Case(
        "allocator names an undeclared cost center",
        allocator(returns="ghost"),
        (
            "rule 'all' (method 'hostile' of plugin 'hostile') allocates to undeclared cost center(s) 'CC-GHOST'",
            "declare them under spec.cost_centers",
        ),
    ),
    # exporters
    Case(
        "exporter raises",
        exporter("raise"),
        ("exporter 'hostile-export' of plugin 'hostile' raised OSError: [Errno 28] No space left on device", BUG),
    ),
    Case(
        "exporter never writes its file",
        exporter("unwritten"),
        ("exporter 'hostile-export' of plugin 'hostile' returned 'hostile.csv' but never wrote that file", BUG),
    ),
    Case(
        "exporter returns None",
        exporter("none"),
        ("exporter 'hostile-export' of plugin 'hostile' returned a NoneType, not a list of the files it wrote", BUG),
    ),
    Case(
        "exporter returns a file outside its folder",
        exporter("outside"),
        ("exporter 'hostile-export' of plugin 'hostile' returned '/etc/passwd', outside the folder it was given", BUG),
    ),
    Case(
        "exporter's generator fails midway",
        exporter("generator"),
        (
            "exporter 'hostile-export' of plugin 'hostile' raised RuntimeError: lost the connection to the journal"
            " service",
            BUG,
        ),
    ),
    # enrichers and notifiers
    Case(
        "enricher raises",
        enricher("raise"),
        ("enricher 'hostile-inventory' of plugin 'hostile' raised TimeoutError: the CMDB did not answer", BUG),
    ),
    Case(
        "enricher returns None",
        enricher("none"),
        ("enricher 'hostile-inventory' of plugin 'hostile' raised TypeError: 'NoneType' object is not iterable", BUG),
    ),
    Case(
        "enricher returns a scope that does not exist",
        enricher("bad-scope"),
        (
            "enricher 'hostile-inventory' of plugin 'hostile' returned TagRecord(scope='galaxy', key='111111111111',"
            " tags={'team': 'web'}), not a TagRecord whose scope is one of resource, resource-group, account",
            BUG,
        ),
    ),
    Case(
        "notifier raises",
        notifier("raise"),
        (
            "on finance-chat: notifier 'hostile-notify' of plugin 'hostile' raised ConnectionRefusedError:"
            " https://hooks.slack.com/*** refused the connection; " + BUG,
            "3 alerts: 3 sent, 0 already sent, 3 failed",  # the json channel beside it got every alert
        ),
    ),
    Case(
        "notifier fails on the alert it is given",
        notifier("attribute"),
        (
            "on finance-chat: notifier 'hostile-notify' of plugin 'hostile' raised AttributeError: 'Alert' object"
            " has no attribute 'channel'; " + BUG,
        ),
    ),
    Case(
        "notifier returns False",
        notifier("returns-false"),
        (
            "on finance-chat: notifier 'hostile-notify' of plugin 'hostile' returned False from send(), not None; "
            + BUG,
        ),
    ),
    Case(  # the contract kept: a delivery that failed is the user's to fix, not a bug to report
        "notifier's delivery is refused",
        notifier("refused"),
        ("on finance-chat: https://hooks.slack.com/*** answered 500",),
        never=(BUG,),
    ),
    Case(
        "notifier raises sending the tag report",
        tags_notified,
        (
            "not sent on finance-chat: notifier 'hostile-notify' of plugin 'hostile' raised ConnectionRefusedError:"
            " https://hooks.slack.com/*** refused the connection; " + BUG,
            "sent to json",
        ),
    ),
]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``chargeback-hostile`` 0.1, installed: its dist-info on ``sys.path`` declares the entry point."""
    site = tmp_path / "site"
    info = site / "chargeback_hostile-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chargeback-hostile\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[chargeback_engine]\nhostile = tests.hostile.hostile_plugin\n")
    monkeypatch.syspath_prepend(str(site))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_plugin_failure_is_one_sentence_naming_the_plugin(
    case: Case, installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARGEBACK_DB", f"sqlite:///{tmp_path / 'books.db'}")
    monkeypatch.setenv("CHARGEBACK_RUNS", str(tmp_path / "runs"))
    args = case.setup(tmp_path)
    result = CliRunner().invoke(main, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert isinstance(result.exception, SystemExit) or result.exception is None, repr(result.exception)
    assert result.exit_code == case.code, output
    assert "Traceback" not in output and "SECRET-TOKEN-abc123" not in output
    for words in case.says:
        assert words in output, output
    for words in case.never:
        assert words not in output, output
    if args[0] == "run":  # nothing of a failed run is visible
        out = tmp_path / "out"
        assert not out.exists() or [p.name for p in out.iterdir()] == [], sorted(out.iterdir())


def test_the_hostile_plugin_is_installed_like_any_other(installed: None) -> None:
    result = CliRunner().invoke(main, ["plugins", "--format", "json"])
    [plugin] = [p for p in json.loads(result.output) if p["name"] == "hostile"]
    assert plugin["distribution"] == "chargeback-hostile" and plugin["version"] == "0.1"
    assert plugin["exporters"] == ["hostile-export"] and plugin["allocators"] == ["hostile"]
