"""``aws-resource-tags`` and ``aws-account-tags``: the tags AWS holds that the bill may not.

Resource tags come from the Resource Groups Tagging API ``GetResources`` (per region, every
page: the last page's ``PaginationToken`` is empty, not absent). A cost line's
``ResourceId`` is an ARN for some services and the bare id for others (EC2 instances,
volumes), so each resource is recorded under both. Account tags come from AWS Organizations
(``ListAccounts``, then ``ListTagsForResource`` per account), called from the management
account or a delegated administrator.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from chargeback_aws.clients import SDK_LOGGERS, ClientFactory, call, default_client
from chargeback_engine.plugin import PageLog, RetryPolicy, TagRecord, base_options, redact_sdk_logs

RESOURCE_TAGS = "aws-resource-tags"
ACCOUNT_TAGS = "aws-account-tags"

#: GetResources returns at most 100 resources a page.
RESOURCES_PER_PAGE = 100


def short_id(arn: str) -> str | None:
    """The id after the ARN's last ``/`` or ``:`` (``i-0abc``, a bucket name); None for a bare id."""
    if not arn.startswith("arn:"):
        return None
    resource = arn.split(":", 5)[-1]
    return resource.rsplit("/", 1)[-1].rsplit(":", 1)[-1] or None


def _tags(pairs: list[Mapping[str, str]]) -> dict[str, str]:
    return {pair["Key"]: pair.get("Value", "") for pair in pairs}


class ResourceTagsEnricher:
    name = RESOURCE_TAGS
    options_schema: Mapping[str, Any] = base_options(
        RESOURCE_TAGS,
        "Resource tags from the Resource Groups Tagging API (GetResources), every page.",
        {
            "regions": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"},
                "minItems": 1,
                "uniqueItems": True,
                "description": "Regions to read (default: the SDK's configured region).",
            },
            "resource_types": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "maxItems": 100,
                "description": "ResourceTypeFilters, e.g. ec2:instance, s3 (default: all).",
            },
        },
    )

    def __init__(self, client_factory: ClientFactory = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        redact_sdk_logs(SDK_LOGGERS)
        for region in options.get("regions") or [None]:
            client = self._client_factory("resourcegroupstaggingapi", region)
            request: dict[str, Any] = {"ResourcesPerPage": RESOURCES_PER_PAGE}
            if options.get("resource_types"):
                request["ResourceTypeFilters"] = list(options["resource_types"])
            where = f"{RESOURCE_TAGS}: GetResources {region or 'default region'}"
            pages = PageLog(where, page_limit=RESOURCES_PER_PAGE)
            token: str | None = None
            while True:
                page = call(
                    self._retry,
                    partial(client.get_resources, **request, **({"PaginationToken": token} if token else {})),
                    f"{RESOURCE_TAGS}: GetResources",
                )
                token = page.get("PaginationToken") or None
                mappings = page.get("ResourceTagMappingList", [])
                if pages.accept(mappings, token):
                    for mapping in mappings:
                        tags = _tags(mapping.get("Tags", []))
                        yield TagRecord("resource", mapping["ResourceARN"], tags)
                        if (bare := short_id(mapping["ResourceARN"])) is not None:
                            yield TagRecord("resource", bare, tags)
                if token is None:
                    break


class AccountTagsEnricher:
    name = ACCOUNT_TAGS
    options_schema: Mapping[str, Any] = base_options(
        ACCOUNT_TAGS,
        "Account tags from AWS Organizations (ListAccounts, ListTagsForResource).",
        {
            "account_name_tag": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "Also record each account's name under this tag.",
            }
        },
    )

    def __init__(self, client_factory: ClientFactory = default_client, retry: RetryPolicy | None = None):
        self._client_factory = client_factory
        self._retry = retry or RetryPolicy()

    def inventory(self, options: Mapping[str, Any]) -> Iterator[TagRecord]:
        redact_sdk_logs(SDK_LOGGERS)
        client = self._client_factory("organizations", None)
        name_tag = options.get("account_name_tag")
        for account in self._paged(client.list_accounts, "Accounts", "ListAccounts"):
            tags = _tags(
                list(
                    self._paged(
                        partial(client.list_tags_for_resource, ResourceId=account["Id"]),
                        "Tags",
                        f"ListTagsForResource {account['Id']}",
                    )
                )
            )
            if name_tag and account.get("Name"):
                tags.setdefault(name_tag, account["Name"])
            yield TagRecord("account", account["Id"], tags)

    def _paged(self, operation: Any, items: str, what: str) -> Iterator[Any]:
        """Follow ``NextToken`` until it is absent."""
        pages = PageLog(f"{ACCOUNT_TAGS}: {what}")
        token: str | None = None
        while True:
            page = call(
                self._retry, partial(operation, **({"NextToken": token} if token else {})), f"{ACCOUNT_TAGS}: {what}"
            )
            token = page.get("NextToken") or None
            if pages.accept(page.get(items, []), token):
                yield from page.get(items, [])
            if token is None:
                return
