"""What an enricher contributes: the tags an inventory holds, by resource, group or account.

Bills often lack tags the inventory knows (tags added after the resource was created, tags
on the parent account or subscription, tags in a CMDB). An enricher reads one inventory and
returns its tags as :class:`TagRecord` values; the engine stores them as a dated snapshot
and fills the bill's gaps from it, per distinct key, never per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

#: What a record's key is compared with: the line's ``ResourceId``, the resource group in
#: an Azure ``ResourceId`` (``/subscriptions/<id>/resourceGroups/<name>``), or the line's
#: ``SubAccountId`` (AWS account, Azure subscription, GCP project).
Scope = Literal["resource", "resource-group", "account"]
SCOPES: tuple[Scope, ...] = ("resource", "resource-group", "account")

#: The bill's own tags in ``spec.enrich.precedence``.
BILL = "bill"


@dataclass(frozen=True)
class TagRecord:
    """The tags one inventory holds for one resource, resource group or account."""

    scope: Scope
    key: str
    tags: Mapping[str, str]


@runtime_checkable
class Enricher(Protocol):
    """Reads an inventory's tags. Called once per snapshot (not per run): the engine stores
    what it returns with the time it was taken, and reruns of a period read that snapshot."""

    name: str
    #: JSON Schema of one ``spec.enrich.sources`` entry (``enricher`` and ``id`` included).
    options_schema: Mapping[str, Any]

    def inventory(self, options: Mapping[str, Any]) -> Iterable[TagRecord]:
        """Every tagged resource, group or account the inventory holds; raise ``InputError``
        for bad input (a missing file, a refused call) with a message that says where."""
        ...


def entry_id(entry: Mapping[str, Any]) -> str:
    """A ``spec.enrich.sources`` entry's id: its ``id``, else its enricher's name."""
    return str(entry.get("id") or entry["enricher"])


def base_options(
    name: str, description: str, properties: Mapping[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The options schema every enricher shares: ``enricher`` pinned to ``name``, an optional
    kebab-case ``id`` (several entries of one enricher need distinct ids), then its own."""
    return {
        "type": "object",
        "description": description,
        "required": ["enricher", *required],
        "additionalProperties": False,
        "properties": {
            "enricher": {"const": name},
            "id": {
                "type": "string",
                "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$",
                "description": "Names the entry in spec.enrich.precedence and in the audit trail.",
            },
            **properties,
        },
    }
