"""``azure-resource-graph`` through the real azure-core pipeline, answered by recorded pages.

Three pages in the documented Resource Graph shape (``totalRecords``, ``count``,
``resultTruncated``, ``$skipToken``, ``data`` as an object array, ``facets``), the second
one empty, as the service answers when a shard has nothing left for the page.
"""

from __future__ import annotations

import json
import random

import pytest
from azure.mgmt.costmanagement import CostManagementClient
from azure_recorded import FakeCredential, RecordedTransport, json_response
from chargeback_azure import plugin
from chargeback_azure.resource_graph import ResourceGraphEnricher

import chargeback_engine
from chargeback_engine.plugin import InputError, RetryPolicy, TagRecord
from chargeback_engine.testing import EnricherContract, FakeClock, line_items, make_engine, make_policy

PATH = "/providers/Microsoft.ResourceGraph/resources"
SUB = "00000000-0000-0000-0000-00000000000a"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-web"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-1"
DISK = f"{RG}/providers/Microsoft.Compute/disks/vm-1-osdisk"
TOKEN_2 = "ew0KICAiJGlkIjogIjEiLA0KICAiTWF4Um93cyI6IDEwMDAsDQogICJSb3dzVG9Ta2lwIjogMiB9"
TOKEN_3 = "ew0KICAiJGlkIjogIjEiLA0KICAiTWF4Um93cyI6IDEwMDAsDQogICJSb3dzVG9Ta2lwIjogNCB9"


def page(rows: list[dict], token: str | None, total: int = 4) -> dict:
    document = {"totalRecords": total, "count": len(rows), "resultTruncated": "false", "data": rows, "facets": []}
    if token:
        document["$skipToken"] = token
    return document


PAGES = {
    None: page(
        [
            {
                "id": f"/subscriptions/{SUB}",
                "type": "microsoft.resources/subscriptions",
                "subscriptionId": SUB,
                "tags": {"CostCenter": "CC-7", "owner": "ops@example.com"},
            },
            {
                "id": RG,
                "type": "microsoft.resources/subscriptions/resourcegroups",
                "subscriptionId": SUB,
                "tags": {"team": "web"},
            },
        ],
        TOKEN_2,
    ),
    TOKEN_2: page([], TOKEN_3),
    TOKEN_3: page(
        [
            {
                "id": VM,
                "type": "microsoft.compute/virtualmachines",
                "subscriptionId": SUB,
                "tags": {"CostCenter": "CC-1"},
            },
            {"id": DISK, "type": "microsoft.compute/disks", "subscriptionId": SUB, "tags": {}},
        ],
        None,
    ),
}


def recorded(pages: dict = PAGES, first: tuple | None = None) -> RecordedTransport:
    transport = RecordedTransport()
    answered = []

    def handler(request):  # type: ignore[no-untyped-def]
        token = json.loads(request.content)["options"].get("$skipToken")
        if first is not None and not answered:
            answered.append(token)
            return first
        return json_response(pages[token])

    transport.route("POST", PATH, handler)
    return transport


def enricher(transport: RecordedTransport) -> ResourceGraphEnricher:
    def client(endpoint: str) -> CostManagementClient:
        return CostManagementClient(FakeCredential(), base_url=endpoint, transport=transport, retry_total=0)

    return ResourceGraphEnricher(client_factory=client, retry=RetryPolicy(clock=FakeClock(), rng=random.Random(3)))


def test_three_pages_give_resource_group_and_subscription_tags() -> None:
    transport = recorded()
    records = list(enricher(transport).inventory({"enricher": "azure-resource-graph", "subscriptions": [SUB]}))
    assert records == [
        TagRecord("account", SUB, {"CostCenter": "CC-7", "owner": "ops@example.com"}),
        TagRecord("resource-group", RG, {"team": "web"}),
        TagRecord("resource", VM, {"CostCenter": "CC-1"}),
    ]
    bodies = [json.loads(r.content) for r in transport.requests]
    assert [b["options"].get("$skipToken") for b in bodies] == [None, TOKEN_2, TOKEN_3]
    assert all(b["subscriptions"] == [SUB] and b["options"]["$top"] == 1000 for b in bodies)
    assert "resourcecontainers" in bodies[0]["query"]
    assert transport.requests[0].headers["Authorization"] == "Bearer fake-token"
    assert "api-version=2022-10-01" in transport.requests[0].url


def test_throttling_is_retried_after_its_wait() -> None:
    clock = FakeClock()
    transport = recorded(first=(429, {"Retry-After": "7"}, b""))
    graph = ResourceGraphEnricher(
        client_factory=lambda endpoint: CostManagementClient(
            FakeCredential(), base_url=endpoint, transport=transport, retry_total=0
        ),
        retry=RetryPolicy(clock=clock, rng=random.Random(3)),
    )
    assert len(list(graph.inventory({}))) == 3
    assert clock.sleeps and clock.sleeps[0] >= 7


def test_a_refusal_is_an_input_error() -> None:
    transport = RecordedTransport()
    transport.route(
        "POST",
        PATH,
        lambda request: json_response(
            {"error": {"code": "AuthorizationFailed", "message": "no read access"}}, status=403
        ),
    )
    with pytest.raises(InputError, match="azure-resource-graph: Resources answered HTTP 403: AuthorizationFailed"):
        list(enricher(transport).inventory({}))


def test_subscription_then_group_then_resource_tags_reach_the_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Plugin:  # the distribution's enricher, answered by the recorded transport
        @chargeback_engine.hookimpl
        def chargeback_register_enrichers(self, register):  # type: ignore[no-untyped-def]
            register(enricher(recorded()))

    policy = make_policy(
        Plugin(),
        builtins=True,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}},
        cost_centers=["CC-1", "CC-7"],
        rules=[{"id": "cc", "priority": 1, "allocate": {"method": "tag", "keys": ["cost-center"]}}],
        enrich={"cache": "cache", "sources": [{"enricher": "azure-resource-graph"}]},
    )
    items = line_items(
        {"BilledCost": "2", "ResourceId": VM.upper(), "SubAccountId": SUB},
        {"BilledCost": "3", "ResourceId": DISK, "SubAccountId": SUB},
    )
    result = make_engine(policy, Plugin(), builtins=True).run([items], "2026-10")
    assert [json.loads(t) for t in result.records["Tags"].to_pylist()] == [
        {"cost-center": "CC-1", "owner": "ops@example.com", "team": "web"},
        {"cost-center": "CC-7", "owner": "ops@example.com", "team": "web"},
    ]
    assert {cc: a for cc, _, a in result.summary() if a} == {"CC-1": 2, "CC-7": 3}


class TestResourceGraphContract(EnricherContract):
    plugin = plugin
    name = "azure-resource-graph"

    @pytest.fixture
    def component(self) -> ResourceGraphEnricher:
        return enricher(recorded())

    @pytest.fixture
    def options(self) -> dict:
        return {"enricher": "azure-resource-graph", "subscriptions": [SUB]}
