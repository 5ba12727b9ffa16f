"""End to end: a policy's ``sources:`` names the AWS collectors; Engine.run allocates every cent."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pyarrow.compute as pc
from chargeback_aws.clients import default_client
from chargeback_aws.cost_explorer import CostExplorerCollector
from chargeback_aws.data_exports import DataExportsCollector
from test_aws_cost_explorer import PAGE_1, PAGE_2, PAGE_3, factory, stubbed
from test_aws_data_exports import EFFECTIVE, FILE_1, FILE_2, deliver, gzip_csv, s3  # noqa: F401  (s3 is a fixture)

from chargeback_engine import Engine
from chargeback_engine.plugin import RetryPolicy
from chargeback_engine.testing import Collectors, FakeClock, make_plugin_manager

POLICY = """\
apiVersion: chargeback/v1
kind: AllocationPolicy
metadata: {name: aws-e2e, version: "1", effective: {from: 2026-01-01}}
spec:
  currency: USD
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


def run(tmp_path, sources_yaml: str, *collectors: object):
    plugins = make_plugin_manager(Collectors(*collectors), builtins=True)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY % sources_yaml)
    engine = Engine([path], plugins)
    return engine.run([], "2026-10", out=tmp_path / "out")


def test_cost_explorer_pages_to_ledger(tmp_path):
    client, stubber = stubbed([(PAGE_1, None), (PAGE_2, "token-2"), (PAGE_3, "token-3")])
    collector = CostExplorerCollector(
        client_factory=factory(client), retry=RetryPolicy(clock=FakeClock(), rng=random.Random(1))
    )
    result = run(
        tmp_path,
        "    - {id: aws-ce, collector: aws-cost-explorer, group_by: [{dimension: LINKED_ACCOUNT}, {tag: team}]}",
        collector,
    )
    stubber.assert_no_pending_responses()
    source_total = Decimal("116.1490000002")  # EffectiveCost (AmortizedCost) over the three pages
    assert pc.sum(result.records["EffectiveCost"]).as_py() == source_total
    assert pc.sum(result.allocations["amount"]).as_py() == source_total
    by_cc = {cc: amount for cc, _, amount in result.summary()}
    assert by_cc["CC-PAY"] == Decimal("17.2500000001")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    [entry] = manifest["inputs"]
    assert entry["source_id"] == "aws-ce" and entry["version"].startswith("sha256:")
    assert entry["details"]["estimated"] == ["2026-10-03"] and entry["details"]["pages"] == 3


def test_cur2_export_to_ledger(tmp_path, s3):  # noqa: F811
    deliver(s3, "exec-7", {"part-1.csv.gz": gzip_csv(FILE_1), "part-2.csv.gz": gzip_csv(FILE_2)})
    result = run(
        tmp_path,
        "    - {id: cur, collector: aws-data-exports, bucket: acme-billing, prefix: exports, "
        "export_name: acme-cur2, table: cur2}",
        DataExportsCollector(client_factory=default_client),
    )
    source_total = pc.sum(result.records["EffectiveCost"]).as_py()
    assert source_total == EFFECTIVE
    assert pc.sum(result.allocations["amount"]).as_py() == source_total
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["inputs"][0]["version"] == "cur2:exec-7"
    assert manifest["inputs"][0]["details"]["totals"]["EffectiveCost"] == {"USD": "48.691700000000000000"}
