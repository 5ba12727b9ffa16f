"""The GCP label enrichers against recorded REST responses, through a real ``requests`` session.

The responses have the documented shapes: Resource Manager v3 ``projects.search``
(``projects`` with ``name``, ``projectId``, ``labels``; ``nextPageToken``) and Cloud Asset v1
``searchAllResources`` (``results`` of ResourceSearchResult; ``nextPageToken``). The asset
search answers three pages, the second empty, as the API does between index shards.
"""

from __future__ import annotations

import json
import random
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from chargeback_gcp import plugin
from chargeback_gcp.labels import AssetLabelsEnricher, ProjectLabelsEnricher, relative_name

import chargeback_engine
from chargeback_engine.plugin import InputError, RetryPolicy, TagRecord
from chargeback_engine.testing import EnricherContract, FakeClock, line_items, make_engine, make_policy

VM = "//compute.googleapis.com/projects/acme-web/zones/us-central1-a/instances/vm-1"
BUCKET = "//storage.googleapis.com/acme-web-logs"

ASSET_PAGES = {
    None: {
        "results": [
            {
                "name": VM,
                "assetType": "compute.googleapis.com/Instance",
                "project": "projects/1001",
                "displayName": "vm-1",
                "location": "us-central1-a",
                "labels": {"cost-center": "cc-1"},
                "state": "RUNNING",
            }
        ],
        "nextPageToken": "CjQaMhIwL2NvbXB1dGU",
    },
    "CjQaMhIwL2NvbXB1dGU": {"nextPageToken": "CjQaMhIwL3N0b3JhZ2U"},  # an empty page: no results key at all
    "CjQaMhIwL3N0b3JhZ2U": {
        "results": [
            {
                "name": BUCKET,
                "assetType": "storage.googleapis.com/Bucket",
                "project": "projects/1001",
                "labels": {"team": "data"},
            },
            {
                "name": "//compute.googleapis.com/projects/acme-web/global/networks/default",
                "assetType": "compute.googleapis.com/Network",
                "project": "projects/1001",
            },
        ]
    },
}
PROJECT_PAGES = {
    None: {
        "projects": [
            {
                "name": "projects/1001",
                "parent": "organizations/42",
                "projectId": "acme-web",
                "state": "ACTIVE",
                "displayName": "acme web",
                "labels": {"cost-center": "cc-7"},
            }
        ],
        "nextPageToken": "p2",
    },
    "p2": {
        "projects": [
            {
                "name": "projects/1002",
                "parent": "folders/9",
                "projectId": "acme-data",
                "state": "ACTIVE",
                "displayName": "acme data",
                "labels": {"cost-center": "cc-8", "owner": "dana"},
            }
        ]
    },
}


class Recorded(requests.adapters.BaseAdapter):
    """requests' transport interface, answering from recorded pages by pageToken."""

    def __init__(self, pages: dict, status: int = 200, body: dict | None = None):
        super().__init__()
        self.pages, self.status, self.body = pages, status, body
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        token = parse_qs(urlparse(request.url).query).get("pageToken", [None])[0]
        response = requests.Response()
        response.status_code = self.status
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        response._content = json.dumps(self.body if self.body is not None else self.pages[token]).encode()
        response.url, response.request = request.url, request
        return response

    def close(self) -> None:
        pass


def session(adapter: Recorded):  # type: ignore[no-untyped-def]
    def factory() -> requests.Session:
        s = requests.Session()
        s.mount("https://", adapter)
        return s

    return factory


def retry() -> RetryPolicy:
    return RetryPolicy(clock=FakeClock(), rng=random.Random(4))


def test_three_asset_pages_one_empty() -> None:
    adapter = Recorded(ASSET_PAGES)
    records = list(
        AssetLabelsEnricher(session(adapter), retry()).inventory(
            {
                "enricher": "gcp-asset-labels",
                "scope": "organizations/42",
                "asset_types": ["compute.googleapis.com/Instance", "storage.googleapis.com/Bucket"],
            }
        )
    )
    assert records == [
        TagRecord("resource", VM, {"cost-center": "cc-1"}),
        TagRecord("resource", relative_name(VM), {"cost-center": "cc-1"}),
        TagRecord("resource", BUCKET, {"team": "data"}),
        TagRecord("resource", "acme-web-logs", {"team": "data"}),
    ]
    queries = [parse_qs(urlparse(r.url).query) for r in adapter.requests]
    assert [q.get("pageToken", [None])[0] for q in queries] == [None, "CjQaMhIwL2NvbXB1dGU", "CjQaMhIwL3N0b3JhZ2U"]
    assert queries[0]["assetTypes"] == ["compute.googleapis.com/Instance", "storage.googleapis.com/Bucket"]
    assert urlparse(adapter.requests[0].url).path == "/v1/organizations/42:searchAllResources"


def test_project_labels_by_project_id() -> None:
    adapter = Recorded(PROJECT_PAGES)
    records = list(ProjectLabelsEnricher(session(adapter), retry()).inventory({"query": "parent:organizations/42"}))
    assert records == [
        TagRecord("account", "acme-web", {"cost-center": "cc-7"}),
        TagRecord("account", "acme-data", {"cost-center": "cc-8", "owner": "dana"}),
    ]
    assert parse_qs(urlparse(adapter.requests[0].url).query)["query"] == ["parent:organizations/42"]


def test_permission_denied_is_an_input_error() -> None:
    body = {"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}}
    with pytest.raises(InputError, match="gcp-asset-labels: searchAllResources: HTTP 403: .*does not have permission"):
        list(AssetLabelsEnricher(session(Recorded({}, 403, body)), retry()).inventory({"scope": "projects/acme-web"}))


def test_resource_then_project_labels_reach_the_lines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Plugin:
        @chargeback_engine.hookimpl
        def chargeback_register_enrichers(self, register):  # type: ignore[no-untyped-def]
            register(AssetLabelsEnricher(session(Recorded(ASSET_PAGES)), retry()))
            register(ProjectLabelsEnricher(session(Recorded(PROJECT_PAGES)), retry()))

    policy = make_policy(
        Plugin(),
        builtins=True,
        directory=tmp_path,
        cost_centers=["cc-1", "cc-7", "cc-8"],
        rules=[{"id": "cc", "priority": 1, "allocate": {"method": "tag", "keys": ["cost-center"]}}],
        enrich={
            "cache": "cache",
            "sources": [
                {"enricher": "gcp-asset-labels", "scope": "organizations/42"},
                {"enricher": "gcp-project-labels"},
            ],
        },
    )
    items = line_items(
        {"BilledCost": "4", "ResourceId": VM, "SubAccountId": "acme-web"},
        {
            "BilledCost": "6",
            "ResourceId": "projects/acme-web/zones/us-central1-a/instances/vm-2",
            "SubAccountId": "acme-web",
        },
        {"BilledCost": "1", "SubAccountId": "acme-data"},
    )
    result = make_engine(policy, Plugin(), builtins=True).run([items], "2026-10")
    assert {cc: a for cc, _, a in result.summary() if a} == {"cc-1": 4, "cc-7": 6, "cc-8": 1}


class TestAssetLabelsContract(EnricherContract):
    plugin = plugin
    name = "gcp-asset-labels"

    @pytest.fixture
    def component(self) -> AssetLabelsEnricher:
        return AssetLabelsEnricher(session(Recorded(ASSET_PAGES)), retry())

    @pytest.fixture
    def options(self) -> dict:
        return {"enricher": "gcp-asset-labels", "scope": "projects/acme-web"}


class TestProjectLabelsContract(EnricherContract):
    plugin = plugin
    name = "gcp-project-labels"

    @pytest.fixture
    def component(self) -> ProjectLabelsEnricher:
        return ProjectLabelsEnricher(session(Recorded(PROJECT_PAGES)), retry())

    @pytest.fixture
    def options(self) -> dict:
        return {"enricher": "gcp-project-labels"}
