"""The collector building blocks: exact money, retries to a deadline, page checks, file streaming."""

from __future__ import annotations

import gzip
import io
import logging
import random
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback_engine.money import LEDGER_QUANTUM
from chargeback_engine.plugin import (
    InputError,
    PageLog,
    RetryPolicy,
    Rounding,
    decimal_from_double,
    iter_file_batches,
    redact_sdk_logs,
    to_money,
)
from chargeback_engine.testing import FakeClock

WIDE = Context(prec=80)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_doubles_become_their_repr_rounded_half_even(value):
    rounding = Rounding()
    [money] = to_money(pa.array([value], pa.float64()), column="c", where="t", rounding=rounding).to_pylist()
    exact = decimal_from_double(value)
    with localcontext(WIDE):
        assert money == exact.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN)
        residue = Decimal(rounding.as_details().get("c", {"residue": "0"})["residue"])
        assert money + residue == exact  # what rounding moved is recorded to the last digit


def test_text_amounts_are_exact_and_bad_text_names_the_row():
    rounding = Rounding()
    values = to_money(
        pa.array(["0.1", "-12.345678901234567891", None, "1E-18", ""]), column="c", where="t", rounding=rounding
    )
    assert values.to_pylist() == [Decimal("0.1"), Decimal("-12.345678901234567891"), None, Decimal("1E-18"), None]
    assert rounding.as_details() == {}
    with pytest.raises(InputError, match=r't: row 2: Cost: "1,5" is not a decimal number'):
        to_money(pa.array(["1", "1,5"]), column="Cost", where="t", rounding=rounding)


def test_retry_after_is_a_floor_and_the_deadline_is_kept():
    clock = FakeClock()
    failures = iter([TimeoutError(), TimeoutError()])

    def flaky() -> str:
        failure = next(failures, None)
        if failure:
            raise failure
        return "ok"

    policy = RetryPolicy(deadline=100, clock=clock, rng=random.Random(3))
    assert policy.call(flaky, retry_after=lambda exc: 30.0, what="op") == "ok"
    assert clock.sleeps == [30.0, 30.0]
    with pytest.raises(InputError, match="deadline"):
        policy.call(lambda: 1 / 0, retry_after=lambda exc: 0.0, what="op")
    with pytest.raises(ValueError):
        policy.call(lambda: int("x"), retry_after=lambda exc: None, what="op")


def test_page_log_flags_duplicates_loops_and_full_last_pages():
    pages = PageLog("q", page_limit=2)
    assert pages.accept([1, 2], "a")
    assert not pages.accept([1, 2], "b")
    assert pages.accept([], "c")
    assert pages.accept([3, 4], None)
    assert pages.as_details() == {"pages": 4, "duplicate_pages": 1, "possibly_truncated": True}
    with pytest.raises(InputError, match="already read"):
        pages.accept([5], "a")


def test_gzip_csv_streams_as_text_in_batches():
    rows = "".join(f"{i},{i}.5\n" for i in range(100_000))
    data = gzip.compress(f"id,cost\n{rows}".encode())
    batches = list(iter_file_batches(io.BytesIO(data), name="x.csv.gz", columns=["cost", "absent"]))
    assert len(batches) > 1
    assert all(b.schema.names == ["cost"] and b.schema.types == [pa.string()] for b in batches)
    assert sum(b.num_rows for b in batches) == 100_000
    with pytest.raises(InputError, match="empty"):
        list(iter_file_batches(io.BytesIO(gzip.compress(b"")), name="e.csv.gz"))


def test_secrets_in_sdk_debug_logs_are_blanked(caplog):
    caplog.set_level(logging.DEBUG)
    redact_sdk_logs(["sdk.test"], ["literal-secret-123"])
    logger = logging.getLogger("sdk.test")
    logger.debug("headers=%s", {"X-Amz-Security-Token": b"tok-abc", "Authorization": "Bearer eyJ0.x.y"})
    logger.debug("<SessionToken>tok-def</SessionToken> and literal-secret-123")
    logger.debug('{"access_token": "ya29.abc", "expires_in": 3599}')
    for secret in ("tok-abc", "eyJ0", "tok-def", "literal-secret-123", "ya29.abc"):
        assert secret not in caplog.text


def test_a_bad_amount_in_a_later_batch_names_its_row_in_the_file():
    from chargeback_engine.plugin import BatchMapper

    mapper = BatchMapper(
        'SELECT "cost" AS BilledCost, "cost" AS EffectiveCost, \'USD\' AS BillingCurrency, '
        "'2026-10-01' AS ChargePeriodStart, '2026-10-02' AS ChargePeriodEnd FROM batch",
        source_id="s",
        money=["cost"],
    )
    rows = "".join(f"{i}.5\n" for i in range(200_000)) + "oops\n"
    batches = list(iter_file_batches(io.BytesIO(f"cost\n{rows}".encode()), name="big.csv", columns=["cost"]))
    assert len(batches) > 1
    read = 0
    with pytest.raises(InputError, match=r'big.csv: row 200001: cost: "oops" is not a decimal number'):
        for batch in batches:
            mapper.map(batch, where="big.csv", first_row=read + 1)
            read += batch.num_rows


def test_totals_past_what_one_amount_may_hold_are_exact():
    from chargeback_engine.focus import MONEY
    from chargeback_engine.plugin import table_details

    big = Decimal("99999999999999999999.999999999999999999")
    table = pa.table(
        {
            "BillingCurrency": ["USD"] * 3,
            **{
                c: pa.array([big, big, big], MONEY)
                for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
            },
        }
    )
    with localcontext(WIDE):
        assert Decimal(table_details(table)["totals"]["BilledCost"]["USD"]) == 3 * big
