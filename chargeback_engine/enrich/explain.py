"""Which tags of a source line came from an inventory, from which snapshot: for ``explain``.

Reads only the run's outputs (``allocations.parquet`` for the record's line,
``enrichment.parquet`` for what was filled), like the rest of ``explain``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

from chargeback_engine.enrich.exporter import FILE


def explain_enrichment(out: str | Path, record_id: str) -> str:
    """One line per tag filled on the record's source line; empty when none was."""
    out = Path(out)
    if not (out / FILE).exists() or not (out / "allocations.parquet").exists():
        return ""
    ledger = ds.dataset(out / "allocations.parquet").to_table(
        columns=["source_id", "source_row"], filter=pc.field("record_id") == record_id)
    if not ledger.num_rows:
        return ""
    source_id, source_row = ledger["source_id"][0].as_py(), ledger["source_row"][0].as_py()
    rows = ds.dataset(out / FILE).to_table(
        filter=(pc.field("x_SourceId") == source_id) & (pc.field("x_SourceRow") == source_row)).to_pylist()
    lines = [f"  enriched tags of {source_id} row {source_row}:"] if rows else []
    for row in sorted(rows, key=lambda r: r["tag"]):
        replaced = f", over the bill's {row['replaced']!r}" if row["replaced"] is not None else ""
        lines.append(f"    tag {row['tag']} = {row['value']} from {row['source']} ({row['enricher']}) snapshot "
                     f"{row['snapshot']}, {row['scope']} {row['key']}{replaced}")
    return "\n".join(lines)
