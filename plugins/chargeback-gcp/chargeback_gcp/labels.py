"""``gcp-project-labels`` and ``gcp-asset-labels``: the labels Google Cloud holds for projects
and resources, which the billing export may lack (labels added later, labels on the project).

Both call the REST APIs through google-auth's ``AuthorizedSession`` (Application Default
Credentials) and follow ``nextPageToken`` until it is absent: Resource Manager v3
``projects.search`` and Cloud Asset Inventory v1 ``searchAllResources`` (at most 500 a page).
An HTTP error becomes the client library's own exception type, so 429 and 5xx are retried
with the collectors' backoff and the rest is an error naming the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from chargeback_engine.plugin import InputError, PageLog, RetryPolicy, TagRecord, base_options
from chargeback_gcp.clients import call

PROJECT_LABELS = "gcp-project-labels"
ASSET_LABELS = "gcp-asset-labels"

RESOURCE_MANAGER = "https://cloudresourcemanager.googleapis.com/v3"
CLOUD_ASSET = "https://cloudasset.googleapis.com/v1"
ASSET_PAGE_SIZE = 500

SessionFactory = Callable[[], Any]  # a requests.Session that authenticates its requests


def default_session() -> Any:
    """An ``AuthorizedSession`` with Application Default Credentials, read-only scope."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform.read-only"])
    return AuthorizedSession(credentials)


def _get(session: Any, url: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    from google.api_core import exceptions

    response = session.get(url, params=params, timeout=(10, 60))
    if response.status_code != 200:
        raise exceptions.from_http_response(response)
    try:
        document: Mapping[str, Any] = response.json()
        return document
    except ValueError as exc:
        raise InputError(f"{url}: answered with invalid JSON: {exc}") from exc


def _pages(
    session: Any,
    retry: RetryPolicy,
    url: str,
    params: Mapping[str, Any],
    items: str,
    what: str,
    page_limit: int | None = None,
) -> Iterator[Mapping[str, Any]]:
    pages = PageLog(what, page_limit=page_limit)
    token: str | None = None
    while True:
        document = call(retry, partial(_get, session, url, {**params, **({"pageToken": token} if token else {})}), what)
        token = document.get("nextPageToken") or None
        if pages.accept(document.get(items, []), token):
            yield from document.get(items, [])
        if token is None:
            return


class ProjectLabelsEnricher:
    name = PROJECT_LABELS
    options_schema: Mapping[str, Any] = base_options(
        PROJECT_LABELS,
        "Project labels from Resource Manager projects.search, recorded under the project id.",
        {
            "query": {
                "type": "string",
                "maxLength": 1000,
                "description": "A projects.search query, e.g. parent:organizations/123 (default: every project "
                "the identity can see).",
            }
        },
    )

    def __init__(self, session_factory: SessionFactory = default_session, retry: RetryPolicy | None = None):
        self._session_factory = session_factory
        self._retry = retry or RetryPolicy()

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        params = {"query": options["query"]} if options.get("query") else {}
        for project in _pages(
            self._session_factory(),
            self._retry,
            f"{RESOURCE_MANAGER}/projects:search",
            params,
            "projects",
            f"{PROJECT_LABELS}: projects.search",
        ):
            if project.get("projectId"):
                yield TagRecord("account", project["projectId"], dict(project.get("labels", {})))


class AssetLabelsEnricher:
    name = ASSET_LABELS
    options_schema: Mapping[str, Any] = base_options(
        ASSET_LABELS,
        "Resource labels from Cloud Asset Inventory searchAllResources.",
        {
            "scope": {
                "type": "string",
                "pattern": "^(projects|folders|organizations)/[^/]+$",
                "description": "projects/<id or number>, folders/<number> or organizations/<number>.",
            },
            "asset_types": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100},
            "query": {"type": "string", "maxLength": 1000, "description": "A search query, e.g. labels.env:prod."},
        },
        required=("scope",),
    )

    def __init__(self, session_factory: SessionFactory = default_session, retry: RetryPolicy | None = None):
        self._session_factory = session_factory
        self._retry = retry or RetryPolicy()

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        params: dict[str, Any] = {"pageSize": ASSET_PAGE_SIZE}
        if options.get("asset_types"):
            params["assetTypes"] = list(options["asset_types"])
        if options.get("query"):
            params["query"] = options["query"]
        url = f"{CLOUD_ASSET}/{options['scope']}:searchAllResources"
        for result in _pages(
            self._session_factory(),
            self._retry,
            url,
            params,
            "results",
            f"{ASSET_LABELS}: searchAllResources",
            page_limit=ASSET_PAGE_SIZE,
        ):
            labels = dict(result.get("labels", {}))
            if not labels or not result.get("name"):
                continue
            yield TagRecord("resource", result["name"], labels)
            if (relative := relative_name(result["name"])) is not None:
                yield TagRecord("resource", relative, labels)


def relative_name(full_name: str) -> str | None:
    """``//compute.googleapis.com/projects/p/zones/z/instances/vm`` -> ``projects/p/zones/z/instances/vm``."""
    if not full_name.startswith("//"):
        return None
    parts = full_name[2:].split("/", 1)
    return parts[1] if len(parts) == 2 and parts[1] else None
