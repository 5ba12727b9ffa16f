"""Every YAML hazard is refused with a located diagnostic, never a traceback."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.bench.yaml_bombs import LEVELS, alias_bomb
from chargeback_engine.errors import Diagnostic
from chargeback_engine.policy.yaml import MAX_BYTES, MAX_DEPTH, read_yaml_file, read_yaml_text


def read(text: str) -> tuple[object, list[str]]:
    document, diagnostics = read_yaml_text(text, "p.yaml")
    return (document.data if document else None), [str(d) for d in diagnostics]


@pytest.mark.parametrize("level", LEVELS)
def test_alias_bombs_are_refused_at_the_first_anchor_without_expansion(level: int) -> None:
    document, diagnostics = read_yaml_text(alias_bomb(level), "bomb.yaml")
    assert document is None
    assert (
        str(diagnostics[0]) == "bomb.yaml:1:5: $.l1: anchors (&l1) are not allowed in policy files; write the value out"
    )
    aliases = [d for d in diagnostics if "aliases (*" in d.message]
    assert len(aliases) == 9 * (level - 1)  # each alias is reported where it is written, none is followed


def test_alias_bomb_levels_grow_ninefold() -> None:
    assert alias_bomb(3).count("*l2") == 9
    assert alias_bomb(1).count("lol") == 9


def test_merge_keys_are_refused_even_without_an_alias() -> None:
    data, diagnostics = read("base: 1\n<<: {a: 1}\n")
    assert data is None
    assert diagnostics == ["p.yaml:2:1: $['<<']: merge keys (<<) are not allowed in policy files; write the fields out"]


def test_an_anchor_alone_is_refused() -> None:
    _, diagnostics = read("a: &x {b: 1}\n")
    assert diagnostics == ["p.yaml:1:4: $.a: anchors (&x) are not allowed in policy files; write the value out"]


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object/apply:os.system [echo hi]\n", "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system ''\n", "!!python/name:os.system"),
        ("a: !custom {b: 1}\n", "!custom"),
        ("a: !!binary aGk=\n", "!!binary"),
        ("a: !!set {x}\n", "!!set"),
    ],
)
def test_non_core_tags_are_refused(text: str, tag: str) -> None:
    data, diagnostics = read(text)
    assert data is None
    assert diagnostics[0].startswith(f"p.yaml:1:4: $.a: the tag {tag} is not allowed")


def test_core_tags_are_accepted_and_str_keeps_the_text() -> None:
    data, diagnostics = read("a: !!str 012\nb: !!int '12'\nc: !!bool 'true'\n")
    assert diagnostics == []
    assert data == {"a": "012", "b": 12, "c": True}


def test_a_core_tag_on_text_that_does_not_fit_it_is_an_error() -> None:
    _, diagnostics = read("a: !!int twelve\n")
    assert diagnostics == ["p.yaml:1:4: $.a: 'twelve' is not a valid !!int"]


@pytest.mark.parametrize("text", [".nan", ".NaN", ".inf", "-.inf", "+.INF"])
def test_non_finite_numbers_are_refused(text: str) -> None:
    _, diagnostics = read(f"rate: {text}\n")
    assert diagnostics == [f"p.yaml:1:7: $.rate: {text} is not a finite number; policies allow only finite numbers"]


@pytest.mark.parametrize(
    ("text", "value"), [("012", 12), ("0x1F", 31), ("0o17", 15), ("+5", 5), ("1_000", 1000), ("-0", 0)]
)
def test_integers_not_written_plainly_must_be_quoted(text: str, value: int) -> None:
    data, diagnostics = read(f"id: {text}\n")
    assert diagnostics == [
        f'p.yaml:1:5: $.id: {text} would be read as the number {value}; quote it ("{text}") if it is text, or write {value}'
    ]
    assert data == {"id": value}  # the data survives so the schema layer can still run


def test_quoted_ids_keep_their_leading_zeros() -> None:
    assert read("id: '012'\ngl: \"0042\"\n") == ({"id": "012", "gl": "0042"}, [])


def test_numbers_with_a_fraction_are_exact_decimals_never_floats() -> None:
    data, _ = read("a: 0.40\nb: 1e-3\nc: 0.1\n")
    assert data == {"a": Decimal("0.40"), "b": Decimal("0.001"), "c": Decimal("0.1")}
    assert all(type(v) is Decimal for v in data.values())  # type: ignore[union-attr]


def test_dates_stay_text_and_keys_stay_as_written() -> None:
    data, diagnostics = read("from: 2026-11-01\n012: a\ntrue: b\n~: c\n")
    assert diagnostics == []
    assert data == {"from": "2026-11-01", "012": "a", "true": "b", "~": "c"}


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    data, diagnostics = read("a: 1\nb:\n  c: 1\n  c: [1, 2]\n")
    assert diagnostics == ["p.yaml:4:3: $.b.c: duplicate key 'c' (first written at line 3, column 3)"]
    assert data == {"a": 1, "b": {"c": 1}}


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert read(ok)[1] == []
    data, diagnostics = read("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert data is None
    assert diagnostics[0].startswith(f"p.yaml:1:{MAX_DEPTH + 1}: $")
    assert diagnostics[0].endswith(f"nesting deeper than {MAX_DEPTH} levels is not allowed")


def test_files_over_the_size_limit_are_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_BYTES + "\n")
    document, diagnostics = read_yaml_file(big)
    assert document is None
    assert diagnostics == [
        Diagnostic(str(big), 1, 1, "$", "the file is larger than 256 KiB; policy files must be smaller")
    ]


def test_non_utf8_text_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"a: 1\nname: caf\xe9\n")
    assert [str(d) for d in read_yaml_file(bad)[1]] == [f"{bad}:2:10: $: the file is not valid UTF-8 text"]


def test_control_characters_are_located() -> None:
    assert read("a: 1\nb: x\x07y\n") == (None, ["p.yaml:2:5: $: YAML syntax error: unacceptable character #x0007"])


def test_syntax_errors_are_located() -> None:
    _, diagnostics = read("a:\n  - b\n c: [1\n")
    assert len(diagnostics) == 1
    assert diagnostics[0].startswith("p.yaml:3:2: $: YAML syntax error:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "p.yaml:1:1: $: the file is empty; expected a policy document"),
        ("# only a comment\n", "p.yaml:1:1: $: the file is empty; expected a policy document"),
        ("a: 1\n---\nb: 2\n", "p.yaml:2:1: $: a policy file holds exactly one YAML document"),
        ("? [a, b]\n: 1\n", "p.yaml:1:3: $: mapping keys must be plain text, not collections or aliases"),
    ],
)
def test_documents_the_reader_cannot_use(text: str, message: str) -> None:
    assert read(text) == (None, [message])


def test_positions_are_one_based_lines_and_columns() -> None:
    document, _ = read_yaml_text("spec:\n  rules:\n    - id: a\n      when: {ServiceName: X}\n", "p.yaml")
    assert document is not None
    assert document.position(("spec", "rules", 0, "id")) == (3, 11)
    assert document.position(("spec", "rules", 0, "when", "ServiceName")) == (4, 27)
    assert document.position(("spec", "rules", 0, "when", "ServiceName"), key=True) == (4, 14)
    assert document.position(("spec", "rules", 0, "missing")) == (3, 7)


@given(st.text(max_size=300))
def test_any_text_gives_data_or_located_diagnostics_never_an_exception(text: str) -> None:
    document, diagnostics = read_yaml_text(text, "fuzz.yaml")
    assert document is not None or diagnostics
    assert all(d.line >= 1 and d.column >= 1 for d in diagnostics)


@given(st.text(alphabet="[]{}&*!:,-? \n'\"#|>a1.<", max_size=200))
def test_yaml_punctuation_soup_never_raises(text: str) -> None:
    document, diagnostics = read_yaml_text(text, "fuzz.yaml")
    assert document is not None or diagnostics


def test_the_benchmark_s_largest_policy_is_accepted_and_just_under_the_limit() -> None:
    from chargeback_engine.bench.yaml_bombs import largest_policy

    text = largest_policy()
    assert MAX_BYTES - 200 < len(text.encode("utf-8")) <= MAX_BYTES
    assert read_yaml_text(text[:2000].rsplit("\n    - id:", 1)[0] + "\n", "head.yaml")[1] == []
