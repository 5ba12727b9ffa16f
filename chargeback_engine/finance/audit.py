"""The hash-chained audit log: every finance write appends its records inside its transaction.

Record *n* stores the hash of record *n-1*; its own hash covers its sequence number, kind,
subject, payload and that previous hash. Editing a byte breaks the record's hash, deleting
a record in the middle leaves a gap and a broken link, reordering breaks the links.

The money is in the chain too: a record carries every row of the covered tables that its
write inserted (:data:`COVERED`), so :func:`verify` recomputes those rows from the database
and names any row that was edited, replaced, added or lost since.

A chain alone cannot see its own tail cut off. So every artefact the product hands out
carries a **witness**: the chain's length and head hash *after* the artefact's own records
(a close, an invoice, a journal batch, a manifest). A witness that names a record the chain
no longer has, or a different hash for it, proves the chain was cut or rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from chargeback_engine import display
from chargeback_engine.canonical import canonical_json, sha256_text
from chargeback_engine.costdb.tables import (
    Money,
    adjustments,
    at_ledger_scale,
    audit_records,
    credit_notes,
    dispute_events,
    disputes,
    invoices,
    journal_batches,
    journal_entries,
    journal_lines,
    period_closes,
    run_tag_compliance,
    runs,
    statement_lines,
)
from chargeback_engine.finance.finance_errors import FinanceError
from chargeback_engine.finance.money_text import money_text
from chargeback_engine.money import minor_units, quantum

GENESIS = "sha256:" + "0" * 64

#: Tables whose rows the chain carries and ``verify`` recomputes. Ledger lines, decisions and a
#: run's cost centers are covered through the run's content hash instead (a month can hold millions).
COVERED = (
    runs,
    run_tag_compliance,
    adjustments,
    statement_lines,
    invoices,
    credit_notes,
    journal_batches,
    journal_entries,
    journal_lines,
    period_closes,
    disputes,
    dispute_events,
)

#: Where an artefact keeps its witness; these are written after the records, so no record covers them.
WITNESS_KEYS = ("audit_head", "audit_seq")


@dataclass(frozen=True)
class Witness:
    """The chain as an artefact saw it: its newest record's number and hash (0 and genesis when empty)."""

    seq: int | None
    head: str
    source: str = ""  # where the witness came from, for messages

    def document(self) -> dict[str, Any]:
        return {"audit_seq": self.seq, "audit_head": self.head}


def record_hash(seq: int, kind: str, subject: str, payload: str, prev_hash: str) -> str:
    return sha256_text("\n".join((str(seq), kind, subject, prev_hash, payload)))


def witness(connection: sa.Connection) -> Witness:
    """The chain's current length and head; after a write's records, the witness its artefacts carry."""
    newest = connection.execute(
        sa.select(audit_records.c.seq, audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
    ).first()
    return Witness(newest.seq, newest.hash) if newest else Witness(0, GENESIS)


def stored_row(table: sa.Table, values: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any]:
    """A row as the chain records it: money at the ledger scale, witnesses left out.

    The same function reads the values a write inserts and the row ``verify`` selects back,
    so both sides compare equal exactly when the row is unchanged.
    """
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name in WITNESS_KEYS:
            continue
        value: Any = values.get(column.name)
        if value is not None and isinstance(column.type, Money):
            value = money_text(at_ledger_scale(value))
        elif column is invoices.c.document:
            value = _without_witness(value)
        row[column.name] = value
    return row


def _without_witness(document: str) -> Any:
    """An invoice document without its witness keys; text that is no JSON object stays as it is."""
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError:
        return document
    return {k: v for k, v in parsed.items() if k not in WITNESS_KEYS} if isinstance(parsed, dict) else document


def append(
    connection: sa.Connection,
    kind: str,
    subject: str,
    payload: Mapping[str, Any],
    rows: Mapping[sa.Table, Sequence[Mapping[str, Any]]] | None = None,
) -> str:
    """Append one record carrying ``rows`` of covered tables; call inside a ``writing`` transaction."""
    last = witness(connection)
    seq = (last.seq or 0) + 1
    body = dict(payload)
    if rows:
        body["rows"] = {
            table.name: [stored_row(table, values) for values in values_list]
            for table, values_list in rows.items()
            if values_list
        }
    text = canonical_json(body, "text")
    digest = record_hash(seq, kind, subject, text, last.head)
    connection.execute(
        audit_records.insert().values(
            seq=seq, kind=kind, subject=subject, payload=text, prev_hash=last.head, hash=digest
        )
    )
    return digest


def witnesses_in(path: Path) -> list[Witness]:
    """Every witness a handed-out JSON artefact carries (a manifest, an invoice, a canonical journal)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FinanceError(f"{path}: cannot be read as a JSON artefact ({error})") from None
    found = [
        Witness(
            seq if isinstance(seq := node.get("audit_seq"), int) and seq >= 0 else None, node["audit_head"], str(path)
        )
        for node in _objects(document)
        if isinstance(node.get("audit_head"), str)
    ]
    if not found:
        raise FinanceError(f"{path}: carries no audit_head (use a manifest.json, an invoice JSON or a journal JSON)")
    return found


def _objects(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


@dataclass(frozen=True)
class AuditReport:
    records: int
    head: str
    problems: tuple[str, ...] = field(default=())  # exact: stored values as the database holds them
    witnesses: tuple[str, ...] = field(default=())  # the witnesses the chain was checked against
    shown: tuple[str, ...] = field(default=())  # the problems for people: amounts in the reader's format

    @property
    def ok(self) -> bool:
        return not self.problems


def _label(table: sa.Table, key: tuple[Any, ...]) -> str:
    names = [column.name for column in table.primary_key.columns]
    if len(names) == 1:
        return f"{table.name} {key[0]}"
    return f"{table.name} ({', '.join(f'{n} {v}' for n, v in zip(names, key))})"


def _changes(
    recorded: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "", table: sa.Table | None = None
) -> Iterator[tuple[str, str]]:
    """``column: database value`` against the recorded value, one per changed column (documents by key):
    the exact text, and the text for people, where a money column of ``table`` shows in the reader's format."""
    for name in sorted(set(recorded) | set(actual)):
        was, now = recorded.get(name), actual.get(name)
        if was == now:
            continue
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            yield from _changes(was, now, f"{prefix}{name}.")
            continue
        exact = f"{prefix}{name} is {_shown(now)} in the database, {_shown(was)} when recorded"
        currency = actual.get("currency") or recorded.get("currency")
        money = table is not None and name in table.c and isinstance(table.c[name].type, Money)
        yield exact, _money_change(name, now, was, currency) if money and isinstance(currency, str) else exact


def _money_change(name: str, now: Any, was: Any, currency: str) -> str:
    """Both amounts as people read them, then the stored text when showing them rounds it."""
    try:
        amounts = [None if v is None else Decimal(v) for v in (now, was)]
    except (InvalidOperation, TypeError):
        amounts = None
    if amounts is None:
        return f"{name} is {_shown(now)} in the database, {_shown(was)} when recorded"
    shown = ["missing" if a is None else display.money(a, currency) for a in amounts]
    text = f"{name} is {shown[0]} in the database, {shown[1]} when recorded"
    places = quantum(minor_units(currency))
    if any(a is not None and a != a.quantize(places) for a in amounts):
        text += f" (stored {_shown(now)} and {_shown(was)})"
    return text


def _shown(value: Any) -> str:
    return "missing" if value is None else value if isinstance(value, str) else canonical_json(value, "text")


def _check_rows(
    connection: sa.Connection, recorded: Mapping[tuple[str, tuple[Any, ...]], tuple[int, dict[str, Any]]]
) -> Iterator[tuple[str, str]]:
    """Each problem of the covered rows: its exact text and its text for people."""
    for table in COVERED:
        key_columns = [column.name for column in table.primary_key.columns]
        seen: set[tuple[Any, ...]] = set()
        for row in connection.execute(sa.select(table)):
            actual = stored_row(table, row._mapping)
            key = tuple(actual[name] for name in key_columns)
            seen.add(key)
            if (table.name, key) not in recorded:
                text = (
                    f"{_label(table, key)}: no audit record holds this row (added outside the product, "
                    "or its record was deleted)"
                )
                yield text, text
                continue
            seq, expected = recorded[(table.name, key)]
            for exact, shown in _changes(expected, actual, table=table):
                where = f"{_label(table, key)}: {{}} in audit record {seq}"
                yield where.format(exact), where.format(shown)
        for name, key in sorted(k for k in recorded if k[0] == table.name and k[1] not in seen):
            text = f"{_label(table, key)}: the row recorded in audit record {recorded[(name, key)][0]} is missing"
            yield text, text


def _anchors(connection: sa.Connection) -> Iterator[Witness]:
    """The witnesses the database itself keeps: on each close, invoice and journal batch."""
    for table, key, what in (
        (period_closes, period_closes.c.period, "period close"),
        (invoices, invoices.c.invoice_id, "invoice"),
        (journal_batches, journal_batches.c.batch_id, "journal batch"),
    ):
        for anchor_id, anchor in connection.execute(sa.select(key, table.c.audit_head).order_by(key)):
            yield Witness(None, anchor, f"{what} {anchor_id}")


def _check_witness(found: Witness, hashes: Sequence[str], position: Mapping[str, int]) -> str | None:
    """What is wrong with the chain as the witness saw it, or None when it still holds that record."""
    if found.seq is None:
        if found.head in position:
            return None
        return (
            f"its audit head {found.head} is not in the chain "
            f"(records after record {len(hashes)} were deleted, or the chain was rewritten)"
        )
    if found.seq > len(hashes):
        missing = found.seq - len(hashes)
        lost = "the last record was" if missing == 1 else f"the last {missing} records were"
        return f"it saw record {found.seq}, but the chain ends at record {len(hashes)} ({lost} deleted)"
    actual = hashes[found.seq - 1] if found.seq else GENESIS
    if actual != found.head:
        return f"it saw record {found.seq} with hash {found.head}, the chain has {actual} (the chain was rewritten)"
    return None


def verify_audit_chain(engine: sa.Engine, witnesses: Iterable[Witness] = ()) -> AuditReport:
    """Re-derive the chain, recompute the rows it covers, and check it against witnesses.

    Without ``witnesses``, the chain is checked against the latest witness the database
    keeps (a close, an invoice or a journal batch); every stored witness must be in the chain.
    """
    problems: list[str] = []
    shown: list[str] = []

    def report(text: str, for_people: str | None = None) -> None:
        problems.append(text)
        shown.append(text if for_people is None else for_people)

    hashes: list[str] = []
    recorded: dict[tuple[str, tuple[Any, ...]], tuple[int, dict[str, Any]]] = {}
    expected_prev, expected_seq = GENESIS, 1
    with engine.connect() as connection:
        for row in connection.execute(sa.select(audit_records).order_by(audit_records.c.seq)):
            if row.seq != expected_seq:
                report(f"record {row.seq}: expected sequence number {expected_seq} (a record is missing)")
            if row.prev_hash != expected_prev:
                report(f"record {row.seq}: link to the previous record is broken (deleted or reordered)")
            if record_hash(row.seq, row.kind, row.subject, row.payload, row.prev_hash) != row.hash:
                report(f"record {row.seq}: content does not match its hash (altered)")
            expected_prev, expected_seq = row.hash, row.seq + 1
            hashes.append(row.hash)
            _collect_rows(row.seq, row.payload, recorded)
        for exact, for_people in _check_rows(connection, recorded):
            report(exact, for_people)
        anchors = list(_anchors(connection))
    position = {digest: i for i, digest in enumerate(hashes, start=1)}
    position[GENESIS] = 0
    for anchor in anchors:
        problem = _check_witness(anchor, hashes, position)
        if problem:
            report(f"{anchor.source}: {problem}")
    given = list(witnesses)
    if given:
        used = given
        for found in given:
            problem = _check_witness(found, hashes, position)
            if problem:
                report(f"witness {found.source}: {problem}")
    else:
        kept = [a for a in anchors if a.head in position]
        used = [max(kept, key=lambda a: position[a.head])] if kept else []
    described = tuple(
        dict.fromkeys(f"{w.source} (record {w.seq if w.seq is not None else position.get(w.head, '?')})" for w in used)
    )
    return AuditReport(
        records=len(hashes), head=expected_prev, problems=tuple(problems), witnesses=described, shown=tuple(shown)
    )


def _collect_rows(
    seq: int, payload: str, recorded: dict[tuple[str, tuple[Any, ...]], tuple[int, dict[str, Any]]]
) -> None:
    """Index the covered rows a record carries by table and primary key (an unreadable payload is already reported)."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError:
        return
    tables = {table.name: table for table in COVERED}
    for name, rows in (body.get("rows") or {}).items() if isinstance(body, dict) else ():
        table = tables.get(name)
        if table is None:
            continue
        for row in rows:
            key = tuple(row.get(column.name) for column in table.primary_key.columns)
            recorded[(name, key)] = (seq, row)
