"""End to end: a policy's ``sources:`` names the GCP collector; Engine.run allocates every cent."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow.compute as pc
from chargeback_gcp.bigquery_export import BigQueryBillingCollector
from gcp_fake_server import FakeGoogle
from test_gcp_bigquery import CONFIG, TOTAL, clients_for, three_pages

from chargeback_engine import Engine
from chargeback_engine.testing import Collectors, make_plugin_manager

POLICY = f"""\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {{name: gcp-e2e, version: "1", effective: {{from: 2026-01-01}}}}
spec:
  currency: USD
  cost_centers:
    - {{id: CC-PAY, name: Payments}}
    - {{id: CC-SEARCH, name: Search}}
    - {{id: CC-SHARED, name: Shared}}
  sources:
    - {{id: gcp, collector: gcp-bigquery-billing, kind: standard, table: {CONFIG["table"]}}}
  rules:
    - id: by-team
      priority: 100
      when: {{tags.team: {{exists: true}}}}
      allocate: {{method: tag, keys: [team], map: {{payments: CC-PAY, search: CC-SEARCH}}, fallback: CC-SHARED}}
"""


def test_bigquery_pages_to_ledger(tmp_path):
    with FakeGoogle() as server:
        three_pages(server)
        plugins = make_plugin_manager(
            Collectors(BigQueryBillingCollector(clients_factory=lambda p, l: clients_for(server))), builtins=True
        )
        path = tmp_path / "policy.yaml"
        path.write_text(POLICY)
        result = Engine([path], plugins).run([], "2026-10", out=tmp_path / "out")
    assert pc.sum(result.records["EffectiveCost"]).as_py() == TOTAL
    assert pc.sum(result.allocations["amount"]).as_py() == TOTAL
    by_cc = {cc: amount for cc, _, amount in result.summary()}
    assert by_cc["CC-SEARCH"] == Decimal("7.25")
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"][0]
    assert entry["version"] == "export_time:2026-10-02T04:00:00+00:00" and entry["details"]["pages"] == 3
