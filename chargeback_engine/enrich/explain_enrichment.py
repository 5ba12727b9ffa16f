"""Which tags of a source line came from an inventory, from which snapshot: for ``explain``.

Reads the run's outputs: ``allocations.parquet`` for the record's line, and
``enrichment.parquet`` for what was filled (``chargeback run`` writes it); a run made
through the library without the ``enrichment`` exporter names the table in its manifest,
and it is read from the cache there, checked against its sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc

from chargeback_engine.durable_files import file_sha256
from chargeback_engine.enrich.apply import ENRICHMENT_INPUT
from chargeback_engine.enrich.exporter import FILE
from chargeback_engine.errors import InputError


def explain_enrichment(out: str | Path, record_id: str) -> str:
    """One line per tag filled on the record's source line; empty when none was."""
    import pyarrow.dataset as ds  # here, not at import: it loads pandas, a third of the CLI's start-up

    out = Path(out)
    table = enrichment_table_path(out)
    if table is None or not (out / "allocations.parquet").exists():
        return ""
    ledger = ds.dataset(out / "allocations.parquet").to_table(
        columns=["source_id", "source_row"], filter=pc.field("record_id") == record_id
    )
    if not ledger.num_rows:
        return ""
    source_id, source_row = ledger["source_id"][0].as_py(), ledger["source_row"][0].as_py()
    rows = (
        ds.dataset(table)
        .to_table(filter=(pc.field("x_SourceId") == source_id) & (pc.field("x_SourceRow") == source_row))
        .to_pylist()
    )
    lines = [f"  enriched tags of {source_id} row {source_row}:"] if rows else []
    for row in sorted(rows, key=lambda r: r["tag"]):
        replaced = f", over the bill's {row['replaced']!r}" if row["replaced"] is not None else ""
        lines.append(
            f"    tag {row['tag']} = {row['value']} from {row['source']} ({row['enricher']}) snapshot "
            f"{row['snapshot']}, {row['scope']} {row['key']}{replaced}"
        )
    return "\n".join(lines)


def enrichment_table_path(out: Path) -> Path | None:
    """``enrichment.parquet`` in ``out``, else the table the manifest names; None without enrichment."""
    if (out / FILE).exists():
        return out / FILE
    manifest = out / "manifest.json"
    inputs = json.loads(manifest.read_text(encoding="utf-8")).get("inputs", []) if manifest.exists() else []
    named = next((i for i in inputs if i.get("source_id") == ENRICHMENT_INPUT and i.get("path")), None)
    if named is None:
        return None
    path = Path(named["path"])
    if not path.exists() or file_sha256(path) != named.get("sha256"):
        raise InputError(
            f"{path}: the enrichment table named in {manifest} is gone or changed; "
            f"run with the enrichment exporter to keep it in the outputs"
        )
    return path
