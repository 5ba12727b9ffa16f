"""Tag enrichment: fill the bill's tag gaps from resource inventories, with provenance.

Enrichers (a plugin kind, ``chargeback_register_enrichers``) read an inventory's tags; the
engine stores each read as a dated snapshot in the local cache and, between collecting and
allocating, fills each line's missing tags under the policy's ``spec.enrich`` precedence
(:func:`chargeback_engine.enrich.apply.enrich_records`). See ``docs/enrichment.md``.
"""

from chargeback_engine.enrich.model import Enricher, TagRecord

__all__ = ["Enricher", "TagRecord"]
