"""End to end: a policy's ``sources:`` names the Azure collectors; Engine.run allocates every cent."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow.compute as pc
from azure.mgmt.costmanagement import CostManagementClient
from azure.storage.blob import ContainerClient
from azure_recorded import (
    BlobContainer,
    FakeCredential,
    RecordedTransport,
    json_response,
)
from chargeback_azure.cost_query import CostQueryCollector
from chargeback_azure.focus_export import FocusExportCollector
from test_azure_cost_query import (
    PAGE_1,
    PAGE_2,
    PAGE_3,
    QUERY_PATH,
    TOTAL,
    by_skiptoken,
)
from test_azure_focus_export import ACCOUNT, deliver, focus_row

from chargeback_engine import Engine
from chargeback_engine.testing import Collectors, make_plugin_manager

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: azure-e2e, version: "1", effective: {from: 2026-01-01}}
spec:
  currency: %s
  cost_centers:
    - {id: CC-PAY, name: Payments}
    - {id: CC-SEARCH, name: Search}
    - {id: CC-SHARED, name: Shared}
  sources:
%s
  rules:
    - id: by-team
      priority: 100
      when: {tags.team: {exists: true}}
      allocate: {method: tag, keys: [team], map: {payments: CC-PAY, search: CC-SEARCH}, fallback: CC-SHARED}
"""


def run(tmp_path, currency: str, sources_yaml: str, *collectors: object):
    plugins = make_plugin_manager(Collectors(*collectors), builtins=True)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % (currency, sources_yaml))
    return Engine([path], plugins).run([], "2026-10", out=tmp_path / "out")


def test_cost_query_pages_to_ledger(tmp_path):
    transport = RecordedTransport()
    transport.route(
        "POST",
        QUERY_PATH,
        by_skiptoken(
            {None: [json_response(PAGE_1)], "page2": [json_response(PAGE_2)], "page3": [json_response(PAGE_3)]}
        ),
    )
    collector = CostQueryCollector(
        client_factory=lambda endpoint: CostManagementClient(
            FakeCredential(), base_url=endpoint, transport=transport, retry_total=0
        )
    )
    result = run(
        tmp_path,
        "USD",
        "    - {id: azure-sub, collector: azure-cost-query, "
        "scope: /subscriptions/00000000-0000-0000-0000-000000000001, cost_type: ActualCost, "
        "group_by: [{dimension: ServiceName}, {tag: team}]}",
        collector,
    )
    assert pc.sum(result.records["EffectiveCost"]).as_py() == TOTAL
    assert pc.sum(result.allocations["amount"]).as_py() == TOTAL
    assert {cc: a for cc, _, a in result.summary()}["CC-SEARCH"] == Decimal("106.15")
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"][0]
    assert entry["details"]["pages"] == 3 and entry["details"]["cost_type"] == "ActualCost"


def test_focus_export_to_ledger(tmp_path):
    transport = RecordedTransport()
    container = BlobContainer(transport, ACCOUNT, "exports")
    deliver(
        container,
        "run-9",
        "2026-11-02T06:00:00Z",
        {
            "part_0_0001.csv.gz": [focus_row(1, "10.125", "9.5", "payments"), focus_row(2, "0.0000000001", "0", None)],
            "part_1_0001.csv.gz": [focus_row(3, "-2.5", "-2.5", "search")],
        },
    )
    collector = FocusExportCollector(
        container_factory=lambda url, name: ContainerClient(
            url, name, credential=FakeCredential(), transport=transport, retry_total=0
        )
    )
    result = run(
        tmp_path,
        "EUR",
        f"    - {{id: azure-focus, collector: azure-focus-export, account_url: '{ACCOUNT}', "
        "container: exports, path: focus/acme-focus}",
        collector,
    )
    assert pc.sum(result.allocations["amount"]).as_py() == pc.sum(result.records["EffectiveCost"]).as_py() == 7
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"][0]["version"] == "run:run-9"
