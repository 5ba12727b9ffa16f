"""CUR 2.0 and FOCUS Data Exports read from a moto S3 bucket through their manifests."""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chargeback_aws.clients import default_client
from chargeback_aws.data_exports import DataExportsCollector
from moto import mock_aws

from chargeback_engine.plugin import COST_TABLE_SCHEMA, InputError, Period, plain_schema

PERIOD = Period(2026, 10)
BUCKET = "acme-billing"
EXPORT = "acme-cur2"
CONFIG = {
    "id": "cur",
    "collector": "aws-data-exports",
    "bucket": BUCKET,
    "prefix": "exports",
    "export_name": EXPORT,
    "table": "cur2",
}
ROOT = f"exports/{EXPORT}"

CUR2_HEADER = [
    "bill_bill_type",
    "bill_billing_period_end_date",
    "bill_billing_period_start_date",
    "bill_payer_account_id",
    "bill_payer_account_name",
    "line_item_currency_code",
    "line_item_line_item_description",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_resource_id",
    "line_item_unblended_cost",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_usage_amount",
    "line_item_usage_end_date",
    "line_item_usage_start_date",
    "line_item_usage_type",
    "pricing_public_on_demand_cost",
    "pricing_unit",
    "product_region_code",
    "product_sku",
    "reservation_effective_cost",
    "reservation_reservation_a_r_n",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "resource_tags",
    "savings_plan_savings_plan_a_r_n",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
]
SP = "arn:aws:savingsplans::111111111111:savingsplan/sp-1"
RI = "arn:aws:ec2:us-east-1:111111111111:reserved-instances/ri-1"


def cur_row(kind: str, unblended: str, **extra: str) -> dict[str, str]:
    row = dict.fromkeys(CUR2_HEADER, "")
    row.update(
        {
            "bill_bill_type": "Anniversary",
            "bill_billing_period_start_date": "2026-10-01T00:00:00.000Z",
            "bill_billing_period_end_date": "2026-11-01T00:00:00.000Z",
            "bill_payer_account_id": "999999999999",
            "bill_payer_account_name": "acme-payer",
            "line_item_currency_code": "USD",
            "line_item_line_item_type": kind,
            "line_item_product_code": "AmazonEC2",
            "line_item_unblended_cost": unblended,
            "line_item_usage_account_id": "111111111111",
            "line_item_usage_account_name": "payments-prod",
            "line_item_usage_start_date": "2026-10-05T00:00:00.000Z",
            "line_item_usage_end_date": "2026-10-05T01:00:00.000Z",
            "product_region_code": "us-east-1",
            "resource_tags": '{"user_team":"payments"}',
        }
    )
    row.update(extra)
    return row


FILE_1 = [
    cur_row(
        "Usage",
        "0.0416",
        line_item_usage_amount="1",
        pricing_public_on_demand_cost="0.0416",
        line_item_resource_id="i-0abc",
    ),
    cur_row(
        "SavingsPlanCoveredUsage",
        "0.0832",
        savings_plan_savings_plan_a_r_n=SP,
        savings_plan_savings_plan_effective_cost="0.0500",
    ),
    cur_row("SavingsPlanNegation", "-0.0832", savings_plan_savings_plan_a_r_n=SP),
    cur_row(
        "SavingsPlanRecurringFee",
        "720",
        savings_plan_savings_plan_a_r_n=SP,
        savings_plan_total_commitment_to_date="720",
        savings_plan_used_commitment="700.25",
        resource_tags="",
    ),
]
FILE_2 = [
    cur_row("DiscountedUsage", "0", reservation_reservation_a_r_n=RI, reservation_effective_cost="0.0301"),
    cur_row(
        "RIFee",
        "200",
        reservation_reservation_a_r_n=RI,
        reservation_unused_amortized_upfront_fee_for_billing_period="12.5",
        reservation_unused_recurring_fee="3.25",
    ),
    cur_row("Fee", "1200", reservation_reservation_a_r_n=RI),
    cur_row("Tax", "18.07"),
    cur_row("Credit", "-5.00", resource_tags="{}"),
]
BILLED = Decimal("0.0416") + Decimal("0.0832") - Decimal("0.0832") + 720 + 0 + 200 + 1200 + Decimal("18.07") - 5
EFFECTIVE = (
    Decimal("0.0416")
    + Decimal("0.05")
    + 0
    + Decimal("19.75")
    + Decimal("0.0301")
    + Decimal("15.75")
    + 0
    + Decimal("18.07")
    - 5
)


def gzip_csv(rows: list[dict[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, CUR2_HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode())


def manifest(execution_id: str, files: list[str]) -> bytes:
    return json.dumps(
        {
            "executionId": execution_id,
            "exportArn": f"arn:aws:bcm-data-exports:us-east-1:999999999999:export/{EXPORT}-0a1b2c",
            "billingPeriod": {"start": "2026-10-01T00:00:00.000Z", "end": "2026-11-01T00:00:00.000Z"},
            "columns": [{"name": c, "type": "string"} for c in CUR2_HEADER],
            "dataFiles": [f"s3://{BUCKET}/{ROOT}/data/BILLING_PERIOD=2026-10/{f}" for f in files],
            "queryStatement": "SELECT * FROM COST_AND_USAGE_REPORT",
        }
    ).encode()


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def deliver(s3, execution_id: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        s3.put_object(Bucket=BUCKET, Key=f"{ROOT}/data/BILLING_PERIOD=2026-10/{name}", Body=body)
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{ROOT}/metadata/BILLING_PERIOD=2026-10/{EXPORT}-Manifest.json",
        Body=manifest(execution_id, list(files)),
    )


def collect(config=CONFIG):
    [source] = DataExportsCollector(client_factory=default_client).collect(config, PERIOD)
    return source


def test_cur2_gzip_csv_files_named_by_the_manifest_are_read_exactly(s3):
    deliver(s3, "exec-1", {f"{EXPORT}-00001.csv.gz": gzip_csv(FILE_1), f"{EXPORT}-00002.csv.gz": gzip_csv(FILE_2)})
    s3.put_object(Bucket=BUCKET, Key=f"{ROOT}/data/BILLING_PERIOD=2026-10/stale-00009.csv.gz", Body=gzip_csv(FILE_1))
    source = collect()
    table = source.table
    assert plain_schema(table.schema) == COST_TABLE_SCHEMA
    assert table.num_rows == 9
    assert sum(table["BilledCost"].to_pylist()) == BILLED
    assert sum(table["EffectiveCost"].to_pylist()) == EFFECTIVE
    assert source.version == "cur2:exec-1"
    assert source.details["rows"] == 9 and source.details["files"] == 2


def test_commitment_line_types_map_to_amortized_cost(s3):
    deliver(s3, "exec-1", {"part-1.csv.gz": gzip_csv(FILE_1 + FILE_2)})
    table = collect().table.to_pylist()
    by_type = {row["ChargeDescription"] or row["ChargeCategory"] + str(i): row for i, row in enumerate(table)}
    effective = [row["EffectiveCost"] for row in table]
    assert effective == [
        Decimal("0.0416"),
        Decimal("0.05"),
        0,
        Decimal("19.75"),
        Decimal("0.0301"),
        Decimal("15.75"),
        0,
        Decimal("18.07"),
        Decimal(-5),
    ]
    assert [row["CommitmentDiscountType"] for row in table][:3] == [None, "Savings Plan", "Savings Plan"]
    assert [row["ChargeCategory"] for row in table] == [
        "Usage",
        "Usage",
        "Credit",
        "Purchase",
        "Usage",
        "Purchase",
        "Purchase",
        "Tax",
        "Credit",
    ]
    assert json.loads(table[0]["Tags"]) == {"user_team": "payments"}
    assert table[3]["Tags"] == "{}"
    assert by_type  # every row mapped


def test_parquet_doubles_go_through_their_repr_and_maps_become_json(s3):
    rows = {
        "line_item_unblended_cost": pa.array([0.1, 0.2, 1.1574074074074073e-05], pa.float64()),
        "line_item_line_item_type": ["Usage", "Usage", "Usage"],
        "line_item_currency_code": ["USD"] * 3,
        "line_item_usage_start_date": pa.array([1790812800000000] * 3, pa.timestamp("us", "UTC")),
        "line_item_usage_end_date": pa.array([1790816400000000] * 3, pa.timestamp("us", "UTC")),
        "resource_tags": pa.array([[("user_team", "search")], [], None], pa.map_(pa.string(), pa.string())),
    }
    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    deliver(s3, "exec-1", {"part-1.snappy.parquet": buffer.getvalue()})
    source = collect()
    assert source.table["BilledCost"].to_pylist() == [Decimal("0.1"), Decimal("0.2"), Decimal("0.000011574074074074")]
    assert source.table["Tags"].to_pylist() == ['{"user_team":"search"}', "{}", "{}"]
    assert source.details["rounding"]["line_item_unblended_cost"] == {"values": 1, "residue": "0.000000000000000000073"}


def test_a_restated_month_is_a_new_version(s3):
    deliver(s3, "exec-1", {"part-1.csv.gz": gzip_csv(FILE_1)})
    first = collect()
    deliver(s3, "exec-2", {"part-1.csv.gz": gzip_csv([*FILE_1[:-1], cur_row("Usage", "0.5")])})
    second = collect()
    assert (first.version, second.version) == ("cur2:exec-1", "cur2:exec-2")


def test_focus_export(s3):
    header = [
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "BillingCurrency",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ServiceName",
        "SubAccountId",
        "Tags",
        "x_Operation",
    ]
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(header)
    writer.writerow(
        [
            "1.5",
            "1.25",
            "2",
            "USD",
            "2026-10-01T00:00:00Z",
            "2026-10-02T00:00:00Z",
            "Amazon Simple Storage Service",
            "111111111111",
            '{"team":"data"}',
            "PutObject",
        ]
    )
    writer.writerow(
        [
            "-0.5",
            "-0.5",
            "",
            "USD",
            "2026-10-01T00:00:00Z",
            "2026-10-02T00:00:00Z",
            "Amazon Simple Storage Service",
            "111111111111",
            "",
            "Credit",
        ]
    )
    deliver(s3, "exec-9", {"focus-00001.csv.gz": gzip.compress(body.getvalue().encode())})
    source = collect(dict(CONFIG, table="focus"))
    assert source.table["BilledCost"].to_pylist() == [Decimal("1.5"), Decimal("-0.5")]
    assert source.table["ChargePeriodStart"][0].as_py().isoformat() == "2026-10-01T00:00:00+00:00"
    assert source.version == "focus:exec-9"


def test_a_bad_amount_names_the_file_and_row(s3):
    deliver(s3, "exec-1", {"part-1.csv.gz": gzip_csv([*FILE_1, cur_row("Usage", "12,50")])})
    with pytest.raises(
        InputError, match=r'part-1.csv.gz: row 5: line_item_unblended_cost: "12,50" is not a decimal number'
    ):
        collect()


def test_a_missing_manifest_is_an_error(s3):
    with pytest.raises(InputError, match="no Manifest.json for period 2026-10"):
        collect()


def test_a_cur2_parquet_export_with_empty_strings_in_its_string_columns_runs(s3):
    """CUR 2.0 Parquet holds costs as doubles and rates, commitments and ids as strings, where
    '' means "none": '' is null, exactly as an empty cell in the CSV export."""
    kinds = ["Usage", "SavingsPlanRecurringFee", "DiscountedUsage", "Tax"]
    rows = {
        "line_item_line_item_type": kinds,
        "line_item_unblended_cost": pa.array([0.123456789012345, 720.0, 0.0, 18.07], pa.float64()),
        "pricing_public_on_demand_cost": pa.array([0.123456789012345, 0.0, 0.0301, 0.0], pa.float64()),
        "pricing_public_on_demand_rate": ["0.0416000000", "", "", ""],
        "line_item_usage_amount": ["2.967711277", "", "1", ""],
        "savings_plan_savings_plan_a_r_n": ["", SP, "", ""],
        "savings_plan_total_commitment_to_date": ["", "720.000000000000001", "", ""],
        "savings_plan_used_commitment": ["", "700.25", "", ""],
        "reservation_reservation_a_r_n": ["", "", RI, ""],
        "reservation_effective_cost": ["", "", "0.0301", ""],
        "line_item_currency_code": ["USD"] * 4,
        "line_item_resource_id": ["i-0abc", "", "", ""],
        "product_region_code": ["us-east-1", "", "us-east-1", ""],
        "bill_billing_period_start_date": pa.array([1790812800000000] * 4, pa.timestamp("us")),
        "bill_billing_period_end_date": pa.array([1793491200000000] * 4, pa.timestamp("us")),
        "line_item_usage_start_date": pa.array([1791158400000000] * 4, pa.timestamp("us")),
        "line_item_usage_end_date": pa.array([1791162000000000] * 4, pa.timestamp("us")),
        "resource_tags": pa.array([[("user_team", "payments")], [], None, []], pa.map_(pa.string(), pa.string())),
    }
    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    deliver(s3, "exec-1", {"part-1.snappy.parquet": buffer.getvalue()})
    source = collect()
    table = source.table
    assert table["BilledCost"].to_pylist() == [Decimal("0.123456789012345"), 720, 0, Decimal("18.07")]
    assert table["EffectiveCost"].to_pylist() == [
        Decimal("0.123456789012345"),
        Decimal("19.750000000000001"),
        Decimal("0.0301"),
        Decimal("18.07"),
    ]
    assert table["ConsumedQuantity"].to_pylist() == [Decimal("2.967711277"), None, 1, None]
    assert table["CommitmentDiscountId"].to_pylist() == [None, SP, RI, None]
    assert table["ResourceId"].to_pylist() == ["i-0abc", None, None, None]
    assert table["RegionId"].to_pylist() == ["us-east-1", None, "us-east-1", None]
    assert table["Tags"].to_pylist() == ['{"user_team":"payments"}', "{}", "{}", "{}"]
    assert table["ChargePeriodStart"][0].as_py().isoformat() == "2026-10-05T00:00:00+00:00"
    assert source.details["rounding"] == {}
