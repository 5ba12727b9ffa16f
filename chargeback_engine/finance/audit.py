"""The hash-chained audit log: every finance write appends one record inside its transaction.

Record *n* stores the hash of record *n-1*; its own hash covers its sequence number, kind,
subject, payload and that previous hash. Editing a byte breaks the record's hash, deleting
a record leaves a gap and a broken link, reordering breaks the links. The head hash is
copied into every invoice and export manifest, so even a rewritten chain no longer matches
the documents that left the building.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from chargeback_engine.finance.canonical import canonical_json, sha256_text
from chargeback_engine.finance.tables import audit_records, invoices, journal_batches, period_closes

GENESIS = "sha256:" + "0" * 64


def record_hash(seq: int, kind: str, subject: str, payload: str, prev_hash: str) -> str:
    return sha256_text("\n".join((str(seq), kind, subject, prev_hash, payload)))


def head(connection: sa.Connection) -> str:
    """The newest record's hash (the genesis hash for an empty log)."""
    newest = connection.execute(
        sa.select(audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
    ).scalar()
    return newest or GENESIS


def append(connection: sa.Connection, kind: str, subject: str, payload: Mapping[str, Any]) -> str:
    """Append one record; call inside a :func:`~chargeback_engine.finance.db.writing` transaction."""
    last = connection.execute(
        sa.select(audit_records.c.seq, audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    body = canonical_json(payload)
    digest = record_hash(seq, kind, subject, body, prev)
    connection.execute(audit_records.insert().values(
        seq=seq, kind=kind, subject=subject, payload=body, prev_hash=prev, hash=digest))
    return digest


@dataclass(frozen=True)
class AuditReport:
    records: int
    head: str
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: sa.Engine) -> AuditReport:
    """Re-derive the whole chain and check that every stored head hash is one of its links."""
    problems: list[str] = []
    expected_prev, expected_seq = GENESIS, 1
    known: set[str] = {GENESIS}
    count = 0
    with engine.connect() as connection:
        rows = connection.execute(sa.select(audit_records).order_by(audit_records.c.seq))
        for row in rows:
            count += 1
            if row.seq != expected_seq:
                problems.append(f"record {row.seq}: expected sequence number {expected_seq} (a record is missing)")
            if row.prev_hash != expected_prev:
                problems.append(f"record {row.seq}: link to the previous record is broken (deleted or reordered)")
            if record_hash(row.seq, row.kind, row.subject, row.payload, row.prev_hash) != row.hash:
                problems.append(f"record {row.seq}: content does not match its hash (altered)")
            expected_prev, expected_seq = row.hash, row.seq + 1
            known.add(row.hash)
        for table, key in ((invoices, invoices.c.invoice_id), (journal_batches, journal_batches.c.batch_id),
                           (period_closes, period_closes.c.period)):
            for anchor_id, anchor in connection.execute(sa.select(key, table.c.audit_head)):
                if anchor not in known:
                    problems.append(f"{table.name} {anchor_id}: its audit head {anchor} is not in the chain")
    return AuditReport(records=count, head=expected_prev, problems=tuple(problems))
