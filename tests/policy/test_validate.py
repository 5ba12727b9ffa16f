"""Validation in layers: every schema and semantic check, located, all at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from chargeback_engine import PolicyError, load_policies, validate
from chargeback_engine.cli import main
from chargeback_engine.plugins import Registry

from .conftest import VALID_POLICY

GOLDEN = Path(__file__).parent / "golden"

Write = Callable[..., Path]


def lines(paths: list[Path] | Path, registry: Registry) -> list[str]:
    return [str(d) for d in validate(paths if isinstance(paths, list) else [paths], registry)]


def messages(path: Path, registry: Registry) -> list[str]:
    """Diagnostics without the file name, which is a temporary path."""
    return [str(d).removeprefix(f"{path}:") for d in validate([path], registry)]


def mutate(*replacements: tuple[str, str]) -> str:
    text = VALID_POLICY
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_the_valid_policy_is_valid_and_loads(write: Write, registry: Registry) -> None:
    path = write(VALID_POLICY)
    assert validate([path], registry) == []
    policy_set = load_policies([path], registry)
    (policy,) = policy_set.policies
    assert [r.id for r in policy.rules] == ["prod-backend", "platform", "databases", "upfront"]
    assert policy.rules[0].location.line == 22


# --- golden: five different mistakes, five located lines, in one pass ---------------


def test_five_mistakes_print_five_located_lines_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    result = CliRunner().invoke(main, ["validate", "five_mistakes.yaml"])
    assert result.exit_code == 1
    assert result.stdout == (GOLDEN / "five_mistakes.txt").read_text(encoding="utf-8")
    assert result.stderr == "5 errors, 0 warnings\n"


def test_a_schema_mistake_does_not_hide_the_semantic_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule with ``priority: high`` is left out of the semantic checks; the other rules keep their own paths."""
    monkeypatch.chdir(GOLDEN)
    result = CliRunner().invoke(main, ["validate", "one_schema_four_semantic_mistakes.yaml"])
    assert result.exit_code == 1
    assert result.stdout == (GOLDEN / "one_schema_four_semantic_mistakes.txt").read_text(encoding="utf-8")
    assert result.stderr == "5 errors, 0 warnings\n"


def test_run_refuses_what_validate_refuses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(GOLDEN)
    bill = tmp_path / "bill.csv"
    bill.write_text(
        "BilledCost,EffectiveCost,BillingCurrency,ChargePeriodStart,ChargePeriodEnd\n"
        "1,1,USD,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--policy", "one_schema_four_semantic_mistakes.yaml", "--input", str(bill), "--period", "2026-11"]
        + ["--out", str(out)],
    )
    assert result.exit_code == 1
    assert result.stderr == (GOLDEN / "one_schema_four_semantic_mistakes.txt").read_text(encoding="utf-8")
    assert not out.exists()


def test_five_semantic_mistakes_golden(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> None:
    monkeypatch.chdir(GOLDEN)
    expected = (GOLDEN / "five_semantic_mistakes.txt").read_text(encoding="utf-8").splitlines()
    assert lines(Path("five_semantic_mistakes.yaml"), registry) == expected


# --- schema layer -------------------------------------------------------------------


def test_a_number_where_text_is_required_says_to_quote_it(write: Write, registry: Registry) -> None:
    path = write(mutate(('version: "2026.11.1"', "version: 2026")))
    assert messages(path, registry) == [
        '5:12: $.metadata.version: expected text, got the number 2026; quote it ("2026") to keep it as text'
    ]


def test_an_unquoted_leading_zero_id_is_reported_once(write: Write, registry: Registry) -> None:
    """Once: not again by the schema, nor by the splits that name the cost center as written."""
    path = write(
        mutate(
            ("{id: CC-2002, name: Frontend}", "{id: 0042, name: Frontend}"),
            ("CC-2002: 0.60", "0042: 0.60"),
            ("CC-2002: 0.5}", "0042: 0.5}"),
        )
    )
    assert messages(path, registry) == [
        '15:12: $.spec.cost_centers[1].id: 0042 would be read as the number 42; quote it ("0042") if it is text, or write 42'
    ]


def test_missing_and_unknown_fields(write: Write, registry: Registry) -> None:
    path = write(mutate(("  currency: USD\n", "  curency: USD\n")))
    assert messages(path, registry) == [
        "8:3: $.spec: 'currency' is a required property",
        "8:3: $.spec.curency: unknown field 'curency'; did you mean 'currency'?",
    ]


def test_allocate_blocks_are_checked_against_their_own_method(write: Write, registry: Registry) -> None:
    path = write(mutate(("{method: weights, splits: {CC-2001: 0.40, CC-2002: 0.60}}", "{method: weights, split: 1}")))
    assert messages(path, registry) == [
        "29:17: $.spec.rules[1].allocate: 'splits' is a required property",
        "29:35: $.spec.rules[1].allocate.split: unknown field 'split'; did you mean 'splits'?",
    ]


def test_unknown_method_is_named_with_a_suggestion(write: Write, registry: Registry) -> None:
    path = write(mutate(("method: driven", "method: drivn")))
    assert messages(path, registry) == [
        "33:26: $.spec.rules[2].allocate.method: unknown allocation method 'drivn'; did you mean 'driven'?"
    ]


def test_unknown_method_with_no_allocators_registered(write: Write) -> None:
    path = write(VALID_POLICY)
    found = messages(path, Registry())
    assert found[0] == (
        "25:26: $.spec.rules[0].allocate.method: unknown allocation method 'to-one'; "
        "none is registered (is its plugin installed and allowed?)"
    )


def test_nested_allocate_blocks_are_validated(write: Write, registry: Registry) -> None:
    path = write(mutate(("then: {method: to-one, cost_center: CC-9000}", "then: {method: nope}")))
    assert messages(path, registry) == [
        "37:60: $.spec.rules[3].allocate.then.method: unknown allocation method 'nope'; "
        "expected one of: broken, driven, later, to-one, weights"
    ]


def test_when_field_names_and_matchers(write: Write, registry: Registry) -> None:
    path = write(
        mutate(
            ("when: {tags.team: platform}", "when: {tags.team: {regex: '('}, service name: x, tags.x: {in: []}}"),
        )
    )
    assert messages(path, registry) == [
        "28:33: $.spec.rules[1].when['tags.team'].regex: '(' is not a valid regular expression (missing ): ()",
        "28:39: $.spec.rules[1].when['service name']: field name 'service name': a field is a FOCUS column (ServiceName) or tags.<key>",
        "28:69: $.spec.rules[1].when['tags.x'].in: needs at least 1 item",
    ]


def test_a_matcher_that_is_neither_value_nor_operator(write: Write, registry: Registry) -> None:
    path = write(mutate(("when: {tags.team: platform}", "when: {tags.team: [platform]}")))
    assert messages(path, registry) == [
        "28:25: $.spec.rules[1].when['tags.team']: expected text, a number, true/false or a mapping, got a list"
    ]


def test_a_driver_needs_exactly_one_of_file_or_inline(write: Write, registry: Registry) -> None:
    path = write(mutate(("    cpu-hours:\n", "    cpu-hours:\n      file: cpu.csv\n")))
    assert messages(path, registry) == ["19:7: $.spec.drivers.cpu-hours: give exactly one of 'file', 'inline'"]


def test_dates_must_be_real_dates(write: Write, registry: Registry) -> None:
    path = write(mutate(("{from: 2026-11-01}", "{from: 2026-13-01}")))
    assert messages(path, registry) == [
        "6:21: $.metadata.effective.from: '2026-13-01' is not a valid date (YYYY-MM-DD)"
    ]


def test_every_error_of_every_file_is_reported_at_once(write: Write, registry: Registry) -> None:
    first = write(mutate(("currency: USD", "currency: usd")), "a.yaml")
    second = write(mutate(("priority: 90", "priority: -1"), ("name: acme", "name: acme-2")), "b.yaml")
    assert lines([first.parent], registry) == [
        f"{first}:8:13: $.spec.currency: 'usd': must be an ISO 4217 currency code such as USD",
        f"{second}:27:17: $.spec.rules[1].priority: must be at least 0",
    ]


# --- semantic layer -----------------------------------------------------------------


def test_duplicate_rule_ids(write: Write, registry: Registry) -> None:
    path = write(mutate(("id: databases", "id: platform")))
    assert messages(path, registry) == [
        "30:11: $.spec.rules[2].id: duplicate rule id 'platform' (first used on line 26)"
    ]


def test_duplicate_cost_center_ids(write: Write, registry: Registry) -> None:
    path = write(mutate(("{id: CC-2002, name: Frontend}", "{id: CC-2001, name: Frontend}")))
    assert messages(path, registry)[0] == (
        "15:12: $.spec.cost_centers[1].id: duplicate cost center id 'CC-2001' (first used on line 14)"
    )


def test_equal_priorities_are_ambiguous(write: Write, registry: Registry) -> None:
    path = write(mutate(("priority: 80", "priority: 100")))
    assert messages(path, registry) == [
        "31:17: $.spec.rules[2].priority: priority 100 is also used by rule 'prod-backend'; "
        "equal priorities make the order ambiguous"
    ]


def test_unknown_driver(write: Write, registry: Registry) -> None:
    path = write(mutate(("driver: cpu-hours", "driver: gpu-hours")))
    assert messages(path, registry) == [
        "33:42: $.spec.rules[2].allocate.driver: unknown driver 'gpu-hours'; did you mean 'cpu-hours'?"
    ]


def test_driver_files_must_exist_beside_the_policy(write: Write, registry: Registry) -> None:
    text = mutate(
        (
            "      inline:\n        - {period: 2026-11, cost_center: CC-2001, quantity: 10}\n",
            "      file: drivers/cpu.csv\n",
        )
    )
    path = write(text)
    assert messages(path, registry) == [
        "19:13: $.spec.drivers.cpu-hours.file: driver file 'drivers/cpu.csv' not found next to the policy"
    ]
    (path.parent / "drivers").mkdir()
    (path.parent / "drivers" / "cpu.csv").write_text("period,cost_center,quantity\n")
    assert messages(path, registry) == [
        "19:7: warning: $.spec.drivers.cpu-hours: driver 'cpu-hours' has no rows for any period of the policy's "
        "window (from 2026-11): every allocation by it takes its fallback"
    ]
    (path.parent / "drivers" / "cpu.csv").write_text("period,cost_center,quantity\n2026-11,CC-2001,10\n")
    assert messages(path, registry) == []


def test_inline_driver_rows_name_known_cost_centers(write: Write, registry: Registry) -> None:
    path = write(mutate(("cost_center: CC-2001, quantity: 10", "cost_center: CC-2009, quantity: 10")))
    assert messages(path, registry) == [
        "20:42: $.spec.drivers.cpu-hours.inline[0].cost_center: unknown cost center 'CC-2009'; "
        "declare it under spec.cost_centers; did you mean 'CC-2002'?"
    ]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("Servicename", "unknown FOCUS column 'Servicename'; did you mean 'ServiceName'?"),
        ("Team", "unknown FOCUS column 'Team'; tags are written tags.<key>"),
        (
            "BilledCost",
            "'BilledCost' cannot be matched on; rules match on attributes, not amounts (use tags.<key> for tags)",
        ),
    ],
)
def test_unknown_focus_columns_in_when(write: Write, registry: Registry, field: str, message: str) -> None:
    path = write(mutate(("when: {ServiceName: {in: [Amazon RDS]}}", f"when: {{any: [{{not: {{{field}: x}}}}]}}")))
    assert messages(path, registry) == [f"32:27: $.spec.rules[2].when.any[0].not.{field}: {message}"]


def test_allocator_findings_are_located_inside_the_block(write: Write, registry: Registry) -> None:
    path = write(mutate(("{CC-2001: 0.40, CC-2002: 0.60}", "{CC-2001: 0.40, CC-2020: 0.6}")))
    assert messages(path, registry) == [
        "29:68: $.spec.rules[1].allocate.splits.CC-2020: unknown cost center 'CC-2020'; "
        "declare it under spec.cost_centers; did you mean 'CC-2002'?",
    ]


def test_fixed_splits_are_summed_as_decimals(write: Write, registry: Registry) -> None:
    # 0.1 + 0.2 + 0.7 == 1 exactly as decimals, but not as floats.
    three = "{CC-2001: 0.1, CC-2002: 0.2, CC-9000: 0.7}"
    assert messages(write(mutate(("{CC-2001: 0.40, CC-2002: 0.60}", three))), registry) == []
    almost = "{CC-2001: 0.3333333333, CC-2002: 0.3333333333, CC-9000: 0.3333333334}"
    assert messages(write(mutate(("{CC-2001: 0.40, CC-2002: 0.60}", almost))), registry) == []
    off = "{CC-2001: 0.3333333333, CC-2002: 0.3333333333, CC-9000: 0.3333333333}"
    assert messages(write(mutate(("{CC-2001: 0.40, CC-2002: 0.60}", off))), registry) == [
        "29:43: $.spec.rules[1].allocate.splits: splits sum to 0.9999999999, not exactly 1"
    ]


def test_a_failing_allocator_check_is_named_not_raised(write: Write, registry: Registry) -> None:
    path = write(mutate(("allocate: {method: driven, driver: cpu-hours}", "allocate: {method: broken}")))
    assert messages(path, registry) == [
        "33:17: $.spec.rules[2].allocate: allocator 'broken' of plugin 'PolicyTestPlugin' failed to check "
        "its parameters: RuntimeError: boom; this is a bug in the plugin: report it to its authors "
        "(chargeback plugins names its distribution)"
    ]


def test_stage_cycles_are_named(write: Write, registry: Registry) -> None:
    stages = (
        "    - {pool: CC-9000, allocate: {method: weights, splits: {CC-2001: 0.5, CC-2002: 0.5}}}\n"
        "    - {pool: CC-2001, allocate: {method: to-one, cost_center: CC-2002}}\n"
        "    - {pool: CC-2002, allocate: {method: later, months: 2, then: {method: to-one, cost_center: CC-9000}}}\n"
    )
    path = write(
        mutate(("    - {pool: CC-9000, allocate: {method: weights, splits: {CC-2001: 0.5, CC-2002: 0.5}}}\n", stages))
    )
    assert messages(path, registry) == [
        "40:14: $.spec.stages[1].pool: shared-cost stages form a cycle: CC-2001 -> CC-2002 -> CC-9000 -> CC-2001",
        "41:14: $.spec.stages[2].pool: shared-cost stages form a cycle: CC-2002 -> CC-9000 -> CC-2002",
    ]


def test_a_pool_that_feeds_itself_is_a_cycle(write: Write, registry: Registry) -> None:
    path = write(mutate(("splits: {CC-2001: 0.5, CC-2002: 0.5}}}", "splits: {CC-2001: 0.5, CC-9000: 0.5}}}")))
    assert messages(path, registry) == [
        "39:14: $.spec.stages[0].pool: shared-cost stages form a cycle: CC-9000 -> CC-9000"
    ]


TWO_POOLS = (
    "    - {id: CC-9000, name: Shared platform, shared: true}\n",
    "    - {id: CC-9000, name: Shared platform, shared: true}\n    - {id: CC-9001, name: Network, shared: true}\n",
)


def test_a_cycle_through_driver_rows_is_named_with_the_driver(write: Write, registry: Registry) -> None:
    """CC-9000 is split by a driver whose rows list CC-9001, which sends its money back to CC-9000."""
    stages = (
        "    - {pool: CC-9000, allocate: {method: driven, driver: cpu-hours}}\n"
        "    - {pool: CC-9001, allocate: {method: weights, splits: {CC-2001: 0.5, CC-9000: 0.5}}}\n"
    )
    path = write(
        mutate(
            TWO_POOLS,
            (
                "        - {period: 2026-11, cost_center: CC-2001, quantity: 10}\n",
                "        - {period: 2026-11, cost_center: CC-2001, quantity: 30}\n"
                "        - {period: 2026-11, cost_center: CC-9001, quantity: 10}\n",
            ),
            ("    - {pool: CC-9000, allocate: {method: weights, splits: {CC-2001: 0.5, CC-2002: 0.5}}}\n", stages),
        )
    )
    assert messages(path, registry) == [
        "41:14: $.spec.stages[0].pool: shared-cost stages form a cycle: CC-9000 -> CC-9001 -> CC-9000 "
        "(through the rows of driver 'cpu-hours')"
    ]


def test_a_stage_whose_driver_lists_its_own_pool_is_a_cycle(write: Write, registry: Registry) -> None:
    path = write(
        mutate(
            ("cost_center: CC-2001, quantity: 10}", "cost_center: CC-9000, quantity: 10}"),
            (
                "{pool: CC-9000, allocate: {method: weights, splits: {CC-2001: 0.5, CC-2002: 0.5}}}",
                "{pool: CC-9000, allocate: {method: driven, driver: cpu-hours}}",
            ),
        )
    )
    assert messages(path, registry) == [
        "39:14: $.spec.stages[0].pool: shared-cost stages form a cycle: CC-9000 -> CC-9000 "
        "(through the rows of driver 'cpu-hours')"
    ]


def test_a_stage_that_feeds_an_earlier_pool_is_named(write: Write, registry: Registry) -> None:
    later = "    - {pool: CC-9001, allocate: {method: weights, splits: {CC-2001: 0.5, CC-9000: 0.5}}}\n"
    path = write(mutate(TWO_POOLS) + later)
    assert messages(path, registry) == [
        "41:14: $.spec.stages[1].pool: stage 2 (pool CC-9001) feeds pool CC-9000, whose stage 1 runs earlier: "
        "money sent there would stay in CC-9000; put CC-9000's stage after this one"
    ]
    by_driver = write(
        mutate(TWO_POOLS, ("cost_center: CC-2001, quantity: 10}", "cost_center: CC-9000, quantity: 10}"))
        + "    - {pool: CC-9001, allocate: {method: driven, driver: cpu-hours}}\n"
    )
    assert messages(by_driver, registry) == [
        "41:14: $.spec.stages[1].pool: stage 2 (pool CC-9001) feeds pool CC-9000, whose stage 1 runs earlier: "
        "driver 'cpu-hours' lists CC-9000, so money sent there would stay in CC-9000; put CC-9000's stage after "
        "this one"
    ]


def test_stage_pools_are_known_and_unique(write: Write, registry: Registry) -> None:
    extra = "    - {pool: CC-9000, allocate: {method: to-one, cost_center: CC-2001}}\n    - {pool: CC-7, allocate: {method: to-one, cost_center: CC-2001}}\n"
    path = write(VALID_POLICY + extra)
    assert messages(path, registry) == [
        "40:14: $.spec.stages[1].pool: duplicate pool 'CC-9000' (first used on line 39)",
        "41:14: $.spec.stages[2].pool: unknown cost center 'CC-7'; declare it under spec.cost_centers",
    ]


def test_a_shadowed_rule_is_a_warning_that_does_not_fail(write: Write, registry: Registry) -> None:
    shadowed = (
        "    - id: backend-rds\n      priority: 10\n"
        "      when: {tags.team: {in: [backend]}, tags.environment: production, ServiceName: Amazon RDS}\n"
        "      allocate: {method: to-one, cost_center: CC-2002}\n"
    )
    path = write(mutate(("  stages:\n", shadowed + "  stages:\n")))
    assert messages(path, registry) == [
        "38:7: warning: $.spec.rules[4]: rule 'backend-rds' never applies: rule 'prod-backend' (priority 100, "
        "line 22) is tried first and matches everything it matches"
    ]
    assert load_policies([path], registry).policies[0].rules[-1].id == "backend-rds"


def test_a_rule_with_an_empty_when_shadows_everything_below_it(write: Write, registry: Registry) -> None:
    path = write(mutate(("      when: {tags.team: platform}\n", "")))
    assert messages(path, registry) == [
        f"{line}:7: warning: $.spec.rules[{index}]: rule {rule!r} never applies: rule 'platform' (priority 90, "
        "line 26) is tried first and matches everything it matches"
        for line, index, rule in ((29, 2, "databases"), (33, 3, "upfront"))
    ]


def test_overlapping_effective_windows_across_files(write: Write, registry: Registry) -> None:
    first = write(mutate(("{from: 2026-11-01}", "{from: 2026-01-01, until: 2026-12-01}")), "a.yaml")
    second = write(mutate(("name: acme", "name: acme-next"), ("{from: 2026-11-01}", "{from: 2026-11-01}")), "b.yaml")
    assert lines([first, second], registry) == [
        f"{second}:6:14: $.metadata.effective: effective window [2026-11-01, ...) overlaps policy 'acme' "
        f"[2026-01-01, 2026-12-01) ({first}:6:14); each billing period needs exactly one policy"
    ]
    adjacent = write(
        mutate(
            ("name: acme", "name: acme-next"),
            ("{from: 2026-11-01}", "{from: 2026-12-01}"),
            ("period: 2026-11", "period: 2026-12"),
        ),
        "b.yaml",
    )
    assert lines([first, adjacent], registry) == []


def test_effective_dates_are_month_boundaries_in_order(write: Write, registry: Registry) -> None:
    path = write(mutate(("{from: 2026-11-01}", "{from: 2026-11-15, until: 2026-11-01}")))
    assert messages(path, registry) == [
        "6:21: $.metadata.effective.from: must be the first day of a month, as billing periods are months",
        "6:40: $.metadata.effective.until: must be after effective.from (2026-11-15)",
    ]


def test_tag_aliases_are_not_chained(write: Write, registry: Registry) -> None:
    path = write(mutate(("aliases: {costcenter: cost-center}", "aliases: {costcenter: cost-center, Cost-Center: cc}")))
    assert messages(path, registry) == [
        "12:27: $.spec.tags.aliases.costcenter: alias target 'cost-center' is itself an alias of 'cc'; aliases are not chained"
    ]


def test_unknown_collector_when_none_matches(write: Write, registry: Registry) -> None:
    path = write(VALID_POLICY + "  sources:\n    - {collector: test-file, path: x.csv}\n")
    assert messages(path, registry) == [
        "41:19: $.spec.sources[0].collector: unknown collector 'test-file'; did you mean 'test-files'?"
    ]


def test_semantics_do_not_wait_for_a_schema_valid_file(write: Write, registry: Registry) -> None:
    path = write(mutate(("id: databases", "id: platform"), ("currency: USD", "currency: usd")))
    assert [m.split(": ", 1)[1] for m in messages(path, registry)] == [
        "$.spec.currency: 'usd': must be an ISO 4217 currency code such as USD",
        "$.spec.rules[2].id: duplicate rule id 'platform' (first used on line 26)",
    ]


def test_a_left_out_cost_center_or_driver_is_still_known_by_name(write: Write, registry: Registry) -> None:
    """Their mistakes are reported once; the rules and stages that name them are not reported too."""
    path = write(
        mutate(
            ("{id: CC-2002, name: Frontend}", "{id: CC-2002, name: Frontend, gl-account: 6420}"),
            ("    cpu-hours:\n", "    cpu-hours:\n      unit: 5\n"),
        )
    )
    assert messages(path, registry) == [
        "15:37: $.spec.cost_centers[1].gl-account: unknown field 'gl-account'; did you mean 'gl_account'?",
        '19:13: $.spec.drivers.cpu-hours.unit: expected text, got the number 5; quote it ("5") to keep it as text',
    ]


# --- API and CLI --------------------------------------------------------------------


def test_load_policies_raises_with_every_diagnostic(write: Write, registry: Registry) -> None:
    path = write(mutate(("id: databases", "id: platform"), ("priority: 80", "priority: 90")))
    with pytest.raises(PolicyError) as raised:
        load_policies([path], registry)
    assert len(raised.value.diagnostics) == 2
    assert str(raised.value).count(str(path)) == 2


def test_a_folder_without_policies_is_an_error(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "acme_test.yaml").write_text("cases: []\n")
    assert lines(tmp_path, registry) == [f"{tmp_path}:1:1: $: no policy files (*.yaml) found"]


def test_cli_formats_and_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    runner = CliRunner()
    github = runner.invoke(main, ["validate", "--format", "github", "five_mistakes.yaml"])
    assert github.exit_code == 1
    assert github.stdout.splitlines()[0] == (
        "::error file=five_mistakes.yaml,line=6,col=9::$.metadata.name: 'Acme Corp': must be kebab-case: "
        "lowercase letters, digits and '-', at most 63 characters"
    )
    as_json = runner.invoke(main, ["validate", "--format", "json", "five_mistakes.yaml"])
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and report["valid"] is False
    assert report["diagnostics"][3] == {
        "file": "five_mistakes.yaml",
        "line": 13,
        "column": 11,
        "path": "$.spec.cost_centers[0].id",
        "message": '012 would be read as the number 12; quote it ("012") if it is text, or write 12',
        "severity": "error",
    }
    assert runner.invoke(main, ["validate"]).exit_code == 2
    assert runner.invoke(main, ["validate", "no-such-file.yaml"]).exit_code == 2
    assert runner.invoke(main, ["validate", "--format", "xml", "five_mistakes.yaml"]).exit_code == 2


def test_cli_exits_0_for_a_valid_policy(tmp_path: Path) -> None:
    path = tmp_path / "empty-rules.yaml"
    path.write_text(
        (GOLDEN / "five_mistakes.yaml")
        .read_text()
        .replace("Acme Corp", "acme")
        .replace("2026.11", '"2026.11"')
        .replace("cost_column: Effective", "cost_column: EffectiveCost")
        .replace("id: 012", 'id: "012"')
        .replace("gl-account", "gl_account")
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "0 errors, 0 warnings\n")


def test_conditions_inside_a_method_are_checked_like_rules(write: Write, registry: Registry) -> None:
    path = write(mutate(("driver: cpu-hours}", "driver: cpu-hours, filter: {Servicename: x}}")))
    assert messages(path, registry) == [
        "33:62: $.spec.rules[2].allocate.filter.Servicename: unknown FOCUS column 'Servicename'; "
        "did you mean 'ServiceName'?"
    ]


NETWORK_POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: net, version: "1", effective: {from: 2026-10-01}}
spec:
  currency: USD
  cost_centers:
    - {id: CC-1, name: One}
    - {id: POOL-NET, name: Network, shared: true}
    - {id: POOL-OPS, name: Operations, shared: true}
  drivers:
    traffic: {file: drivers/traffic.csv}
  rules:
    - {id: all, priority: 1, when: {}, allocate: {method: direct, cost_center: POOL-NET}}
  stages:
    - {pool: POOL-NET, allocate: {method: proportional, driver: traffic, fallback: even}}
    - {pool: POOL-OPS, allocate: {method: even, among: [CC-1, POOL-NET]}}
"""


def test_a_run_refuses_a_pool_cycle_hidden_in_a_driver_file(write: Write, builtin_registry: Registry) -> None:
    """The issue's case: POOL-NET's driver file lists POOL-OPS, whose stage sends money back to POOL-NET."""
    path = write(NETWORK_POLICY)
    (path.parent / "drivers").mkdir()
    (path.parent / "drivers" / "traffic.csv").write_text(
        "period,cost_center,quantity\n2026-10,CC-1,3\n2026-10,POOL-OPS,1\n"
    )
    expected = (
        f"{path}:15:14: $.spec.stages[0].pool: shared-cost stages form a cycle: POOL-NET -> POOL-OPS -> "
        "POOL-NET (through the rows of driver 'traffic')"
    )
    assert lines(path, builtin_registry) == [expected]
    with pytest.raises(PolicyError) as refused:
        load_policies([path], builtin_registry)
    assert expected in str(refused.value)
