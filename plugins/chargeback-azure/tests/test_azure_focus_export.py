"""FOCUS exports read from blob storage through azure-storage-blob, over a recorded transport."""

from __future__ import annotations

import csv
import gzip
import io
import json
from decimal import Decimal

import pytest
from azure.storage.blob import ContainerClient
from azure_recorded import BlobContainer, FakeCredential, RecordedTransport
from chargeback_azure.focus_export import FocusExportCollector

from chargeback_engine.plugin import COST_TABLE_SCHEMA, InputError, Period, plain_schema

PERIOD = Period(2026, 10)
ACCOUNT = "https://acmebilling.blob.core.windows.net"
CONFIG = {
    "id": "azure-focus",
    "collector": "azure-focus-export",
    "account_url": ACCOUNT,
    "container": "exports",
    "path": "focus/acme-focus",
}
HEADER = [
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountId",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "EffectiveCost",
    "ListCost",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_ResourceGroupName",
    "x_SkuMeterName",
]


def focus_row(day: int, billed: str, effective: str, team: str | None) -> dict[str, str]:
    return {
        "BilledCost": billed,
        "EffectiveCost": effective,
        "ListCost": billed,
        "ContractedCost": billed,
        "BillingAccountId": "/providers/Microsoft.Billing/billingAccounts/1234",
        "BillingAccountName": "Acme",
        "BillingCurrency": "EUR",
        "BillingPeriodStart": "2026-10-01T00:00:00Z",
        "BillingPeriodEnd": "2026-11-01T00:00:00Z",
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodStart": f"2026-10-{day:02d}T00:00:00Z",
        "ChargePeriodEnd": f"2026-10-{day + 1:02d}T00:00:00Z",
        "ConsumedQuantity": "24",
        "ConsumedUnit": "Hours",
        "ProviderName": "Microsoft",
        "PublisherName": "Microsoft",
        "RegionId": "westeurope",
        "ResourceId": f"/subscriptions/s1/resourcegroups/rg/providers/vm{day}",
        "ServiceCategory": "Compute",
        "ServiceName": "Virtual Machines",
        "SubAccountId": "s1",
        "SubAccountName": "prod",
        "Tags": json.dumps({"team": team}) if team else "{}",
        "x_ResourceGroupName": "rg",
    }


def gzip_csv(rows: list[dict[str, str]]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, HEADER, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode())


def deliver(
    container: BlobContainer,
    run_id: str,
    submitted: str,
    parts: dict[str, list[dict[str, str]]],
    claimed_rows: int | None = None,
) -> None:
    folder = f"focus/acme-focus/20261001-20261031/{run_id}"
    blobs = []
    for name, rows in parts.items():
        body = gzip_csv(rows)
        container.put(f"{folder}/{name}", body)
        blobs.append(
            {
                "blobName": f"{folder}/{name}",
                "byteCount": len(body),
                "dataRowCount": claimed_rows if claimed_rows is not None else len(rows),
            }
        )
    manifest = {
        "manifestVersion": "2024-04-01",
        "byteCount": sum(b["byteCount"] for b in blobs),
        "blobCount": len(blobs),
        "dataRowCount": sum(b["dataRowCount"] for b in blobs),
        "exportConfig": {
            "exportName": "acme-focus",
            "resourceId": "/providers/Microsoft.Billing/billingAccounts/1234"
            "/providers/Microsoft.CostManagement/exports/acme-focus",
            "dataVersion": "1.0r2",
            "apiVersion": "2023-07-01-preview",
            "type": "FocusCost",
            "timeFrame": "MonthToDate",
            "granularity": "Daily",
        },
        "deliveryConfig": {
            "partitionData": True,
            "dataOverwriteBehavior": "CreateNewReport",
            "fileFormat": "Csv",
            "compressionMode": "gzip",
            "containerUri": "/subscriptions/s1/resourceGroups/rg/providers/"
            "Microsoft.Storage/storageAccounts/acmebilling",
            "rootFolderPath": "focus",
        },
        "runInfo": {
            "executionType": "Scheduled",
            "submittedTime": submitted,
            "runId": run_id,
            "startDate": "2026-10-01T00:00:00",
            "endDate": "2026-10-31T00:00:00Z",
        },
        "blobs": blobs,
    }
    container.put(f"{folder}/manifest.json", json.dumps(manifest).encode())


@pytest.fixture
def storage():
    transport = RecordedTransport()
    container = BlobContainer(transport, ACCOUNT, "exports")

    def factory(account_url: str, name: str) -> ContainerClient:
        return ContainerClient(account_url, name, credential=FakeCredential(), transport=transport, retry_total=0)

    return container, FocusExportCollector(container_factory=factory), transport


def test_the_newest_run_is_read_partition_by_partition(storage):
    container, collector, transport = storage
    deliver(container, "run-old", "2026-10-20T06:00:00.1Z", {"part_0_0001.csv.gz": [focus_row(1, "1", "1", "x")]})
    deliver(
        container,
        "run-new",
        "2026-11-02T06:00:00.1Z",
        {
            "part_0_0001.csv.gz": [focus_row(1, "10.125", "9.5", "payments"), focus_row(2, "0.0000000001", "0", None)],
            "part_1_0001.csv.gz": [focus_row(3, "-2.5", "-2.5", "search")],
        },
    )
    [source] = collector.collect(CONFIG, PERIOD)
    assert plain_schema(source.table.schema) == COST_TABLE_SCHEMA
    assert source.version == "run:run-new"
    assert sum(source.table["BilledCost"].to_pylist()) == Decimal("7.6250000001")
    assert sum(source.table["EffectiveCost"].to_pylist()) == Decimal(7)
    assert source.table["Tags"].to_pylist() == ['{"team":"payments"}', "{}", '{"team":"search"}']
    assert source.details["files"] == 2 and source.details["rows"] == 3
    assert any(r.headers.get("Authorization") == "Bearer fake-token" for r in transport.requests)


def test_a_partition_shorter_than_its_manifest_is_an_error(storage):
    container, collector, _ = storage
    deliver(
        container,
        "run-1",
        "2026-11-02T06:00:00Z",
        {"part_0_0001.csv.gz": [focus_row(1, "1", "1", "x")]},
        claimed_rows=2,
    )
    with pytest.raises(InputError, match="read 1 rows, the manifest says 2"):
        list(collector.collect(CONFIG, PERIOD))


def test_no_run_for_the_period_is_an_error(storage):
    _, collector, _ = storage
    with pytest.raises(InputError, match="no export run with a manifest.json for period 2026-10"):
        list(collector.collect(CONFIG, PERIOD))


def test_a_rerun_is_a_new_version(storage):
    container, collector, _ = storage
    deliver(container, "run-1", "2026-11-02T06:00:00Z", {"p.csv.gz": [focus_row(1, "1", "1", "x")]})
    [first] = collector.collect(CONFIG, PERIOD)
    deliver(container, "run-2", "2026-11-03T06:00:00Z", {"p.csv.gz": [focus_row(1, "1.5", "1", "x")]})
    [second] = collector.collect(CONFIG, PERIOD)
    assert (first.version, second.version) == ("run:run-1", "run:run-2")
