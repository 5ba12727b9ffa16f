"""A canary access token handed to the SDK pipelines never reaches logs or outputs, even at DEBUG."""

from __future__ import annotations

import logging

from azure.mgmt.costmanagement import CostManagementClient
from azure.storage.blob import ContainerClient
from azure_recorded import (
    BlobContainer,
    FakeCredential,
    RecordedTransport,
    json_response,
    sequence,
)
from chargeback_azure.cost_query import CostQueryCollector
from chargeback_azure.focus_export import FocusExportCollector
from test_azure_cost_query import CONFIG as QUERY_CONFIG
from test_azure_cost_query import PAGE_3, QUERY_PATH
from test_azure_focus_export import ACCOUNT, deliver, focus_row
from test_azure_focus_export import CONFIG as EXPORT_CONFIG

from chargeback_engine.plugin import Period

CANARY = "canary-eyJ0eXAiOiJKV1QiLCJhbGciOi-Zq81"


def test_no_token_in_logs_or_outputs(caplog, capsys):
    transport = RecordedTransport()
    transport.route("POST", QUERY_PATH, sequence(json_response(PAGE_3)))
    container = BlobContainer(transport, ACCOUNT, "exports")
    deliver(container, "run-1", "2026-11-02T06:00:00Z", {"p.csv.gz": [focus_row(1, "1", "1", "x")]})
    credential = FakeCredential(CANARY)
    query = CostQueryCollector(
        client_factory=lambda endpoint: CostManagementClient(
            credential, base_url=endpoint, transport=transport, retry_total=0, logging_enable=True
        )
    )
    export = FocusExportCollector(
        container_factory=lambda url, name: ContainerClient(
            url, name, credential=credential, transport=transport, retry_total=0, logging_enable=True
        )
    )
    caplog.set_level(logging.DEBUG)
    sources = [*query.collect(QUERY_CONFIG, Period(2026, 10)), *export.collect(EXPORT_CONFIG, Period(2026, 10))]
    assert any(CANARY in r.headers.get("Authorization", "") for r in transport.requests)  # the token was used
    assert any(r.name.startswith("azure") for r in caplog.records)  # and the SDK did log at DEBUG
    outputs = [caplog.text, *capsys.readouterr()]
    for source in sources:
        outputs += [source.version, repr(source.details), source.table.to_pandas().to_csv()]
    assert not [text for text in outputs if CANARY in text]
