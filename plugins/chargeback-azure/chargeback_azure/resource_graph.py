"""``azure-resource-graph``: resource, resource-group and subscription tags from Resource Graph.

One query over ``resources`` and ``resourcecontainers``, ordered by id so that pages are
stable, posted to ``Microsoft.ResourceGraph/resources`` with ``$top`` 1000 and then the
``$skipToken`` of each answer until there is none. The request goes through the same
authenticated ARM pipeline as the cost query collector (``send_request``), with our retries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from chargeback_azure.cost_query import default_client
from chargeback_azure.http import (
    CONNECTION_TIMEOUT,
    READ_TIMEOUT,
    SDK_LOGGERS,
    Throttled,
    call,
    retry_wait,
)
from chargeback_engine.plugin import InputError, PageLog, RetryPolicy, TagRecord, base_options, redact_sdk_logs

NAME = "azure-resource-graph"
API_VERSION = "2022-10-01"
PAGE_ROWS = 1000

QUERY = (
    "resources | project id, type, subscriptionId, tags"
    " | union (resourcecontainers"
    " | where type in~ ('microsoft.resources/subscriptions', 'microsoft.resources/subscriptions/resourcegroups')"
    " | project id, type, subscriptionId, tags)"
    " | where isnotempty(tags) | order by id asc"
)

_GUID = "^[0-9a-fA-F-]{36}$"


class ResourceGraphEnricher:
    name = NAME
    options_schema: Mapping[str, Any] = base_options(
        NAME,
        "Resource, resource-group and subscription tags from Azure Resource Graph.",
        {
            "subscriptions": {
                "type": "array",
                "items": {"type": "string", "pattern": _GUID},
                "minItems": 1,
                "uniqueItems": True,
            },
            "management_groups": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "uniqueItems": True,
            },
            "endpoint": {
                "type": "string",
                "default": "https://management.azure.com",
                "description": "The ARM endpoint; change it only for sovereign clouds.",
            },
        },
    )

    def __init__(self, client_factory: Callable[[str], Any] = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        redact_sdk_logs(SDK_LOGGERS)
        client = self._client_factory(options.get("endpoint", "https://management.azure.com"))
        body: dict[str, Any] = {"query": QUERY, "options": {"$top": PAGE_ROWS, "resultFormat": "objectArray"}}
        for key, field in (("subscriptions", "subscriptions"), ("management_groups", "managementGroups")):
            if options.get(key):
                body[field] = list(options[key])
        url = f"/providers/Microsoft.ResourceGraph/resources?api-version={API_VERSION}"
        pages = PageLog(f"{NAME}: Resources", page_limit=PAGE_ROWS)
        token: str | None = None
        while True:
            page_body = {**body, "options": {**body["options"], "$skipToken": token}} if token else body
            document = call(self._retry, partial(_post, client, url, page_body), f"{NAME}: Resources")
            token = document.get("$skipToken") or None
            rows = document.get("data", [])
            if not isinstance(rows, list):
                raise InputError(f"{NAME}: Resources answered data that is not a list of objects")
            if pages.accept(rows, token):
                yield from (_record(row) for row in rows if row.get("tags"))
            if token is None:
                return


def _record(row: Mapping[str, Any]) -> TagRecord:
    kind = str(row.get("type", "")).lower()
    tags = {str(k): str(v) for k, v in row["tags"].items()}
    if kind == "microsoft.resources/subscriptions":
        return TagRecord("account", str(row["subscriptionId"]), tags)
    if kind == "microsoft.resources/subscriptions/resourcegroups":
        return TagRecord("resource-group", str(row["id"]), tags)
    return TagRecord("resource", str(row["id"]), tags)


def _post(client: Any, url: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    from azure.core.rest import HttpRequest

    response = client.send_request(
        HttpRequest("POST", url, json=body), connection_timeout=CONNECTION_TIMEOUT, read_timeout=READ_TIMEOUT
    )
    if response.status_code == 429 or response.status_code >= 500:
        raise Throttled(response.status_code, retry_wait(response.headers))
    text = response.text()
    try:
        document: Mapping[str, Any] = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{NAME}: Resources answered HTTP {response.status_code} with invalid JSON: {exc}") from exc
    if response.status_code != 200:
        error = document.get("error", {}) if isinstance(document, dict) else {}
        raise InputError(
            f"{NAME}: Resources answered HTTP {response.status_code}: "
            f"{error.get('code', '')} {error.get('message', '')}".rstrip()
        )
    return document
