"""``enrichment``: the run's enrichment table as ``enrichment.parquet``, next to the decisions.

The table was written to the cache while the run enriched its lines, named by its content;
this copies it into the outputs so that ``explain`` and ``report tags`` can name, long after
the run, the source and snapshot of every tag that was not on the bill.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chargeback_engine.enrich.apply import ENRICHMENT_INPUT

FILE = "enrichment.parquet"


class EnrichmentExporter:
    name = "enrichment"
    options_schema: Mapping[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

    def export(self, result: Any, directory: Path) -> Sequence[Path]:
        """Nothing when the policy enriches nothing."""
        table = next((i for i in result.inputs if i.source_id == ENRICHMENT_INPUT and i.path), None)
        if table is None:
            return []
        target = directory / FILE
        shutil.copyfile(table.path, target)
        return [target]
