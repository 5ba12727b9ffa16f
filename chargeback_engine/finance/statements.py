"""A period's statement: every cent of the period, owned by an invoice, a showback or the unallocated bucket.

The statement gathers the period's current run (aggregated by cost center, service and
category), the adjustments restatements pushed into the period, and the credit notes of
approved disputes. Each cost center is treated by its mode: chargeback cost centers get an
invoice, showback ones a report, and the unallocated bucket stays visible on its own.
Rounding goes top down (see :mod:`~chargeback_engine.finance.rounding`): each cost center's
total first, so that invoices + showback + unallocated equal the period total rounded to the
minor unit, then its lines, so that they add up to its total.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from chargeback_engine.canonical import canonical_json, content_id, sha256_text
from chargeback_engine.costdb.queries import head_run
from chargeback_engine.costdb.tables import (
    adjustments,
    exact,
    ledger_lines,
    run_cost_centers,
    run_tag_compliance,
    runs,
)
from chargeback_engine.errors import PeriodError
from chargeback_engine.finance.audit import Witness
from chargeback_engine.finance.disputes import pending_credits
from chargeback_engine.finance.finance_errors import FinanceError
from chargeback_engine.finance.money_text import minor, money_text
from chargeback_engine.finance.rounding import round_groups, round_total
from chargeback_engine.finance.runs import aggregate_run
from chargeback_engine.finance.settings import FinanceSettings
from chargeback_engine.periods import Period

TREATMENTS = ("invoice", "showback", "unallocated")


@dataclass(frozen=True)
class CostCenterTerms:
    """How a cost center is treated in one period, and why (its tagging compliance)."""

    id: str
    name: str
    declared_mode: str
    mode: str  # showback or chargeback, after resolving "auto"
    compliance: Decimal  # spend-weighted share of its direct cost that is tagged (see resolve_terms)
    gl_account: str | None
    entity: str | None


@dataclass(frozen=True)
class StatementLine:
    cost_center: str
    treatment: str
    service_name: str
    category: str
    reference: str  # the corrected period of an adjustment, the dispute of a credit, else ""
    currency: str
    exact_amount: Decimal
    amount: Decimal  # rounded to the currency's minor unit

    @property
    def is_credit_note(self) -> bool:
        """A dispute credit (ledger credits, such as provider refunds, carry no reference)."""
        return self.category == "credit" and bool(self.reference)


@dataclass(frozen=True)
class Invoice:
    """One chargeback cost center's invoice for one period and currency; its id is its content's hash."""

    invoice_id: str
    period: str
    cost_center: str
    cost_center_name: str
    entity: str | None
    payer_entity: str | None
    gl_account: str | None
    currency: str
    lines: tuple[StatementLine, ...]
    subtotal: Decimal
    markup_rate: Decimal
    markup: Decimal
    total: Decimal
    run_key: str
    audit_head: str  # the witness: the audit chain after the invoice's own records
    audit_seq: int | None

    @property
    def number(self) -> str:
        return f"{self.period}/{self.cost_center}/{self.currency}"

    @property
    def credit_notes(self) -> tuple[str, ...]:
        return tuple(line.reference for line in self.lines if line.is_credit_note)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Invoice:
        """Rebuild an issued invoice from its stored document (the document is the record)."""
        c = doc["currency"]
        lines = tuple(
            StatementLine(
                doc["cost_center"],
                "invoice",
                line["service_name"],
                line["category"],
                line["reference"],
                c,
                Decimal(line["exact_amount"]),
                Decimal(line["amount"]),
            )
            for line in doc["lines"]
        )
        return cls(
            doc["invoice_id"],
            doc["period"],
            doc["cost_center"],
            doc["cost_center_name"],
            doc["entity"],
            doc["payer_entity"],
            doc["gl_account"],
            c,
            lines,
            Decimal(doc["subtotal"]),
            Decimal(doc["markup_rate"]),
            Decimal(doc["markup"]),
            Decimal(doc["total"]),
            doc["run_key"],
            doc["audit_head"],
            doc.get("audit_seq"),
        )

    @classmethod
    def from_stored(cls, text: str) -> Invoice:
        """An issued invoice from its stored canonical JSON; a mangled document is a clear error."""
        try:
            return cls.from_document(json.loads(text))
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            raise FinanceError(
                f"a stored invoice document cannot be read ({type(error).__name__}: {error}); "
                "run chargeback audit verify"
            ) from None

    def document(self) -> dict[str, Any]:
        c = self.currency
        return {
            "invoice_id": self.invoice_id,
            "number": self.number,
            "period": self.period,
            "cost_center": self.cost_center,
            "cost_center_name": self.cost_center_name,
            "entity": self.entity,
            "payer_entity": self.payer_entity,
            "gl_account": self.gl_account,
            "currency": c,
            "lines": [
                {
                    "service_name": line.service_name,
                    "category": line.category,
                    "reference": line.reference,
                    "exact_amount": money_text(line.exact_amount),
                    "amount": minor(line.amount, c),
                }
                for line in self.lines
            ],
            "subtotal": minor(self.subtotal, c),
            "markup_rate": money_text(self.markup_rate),
            "markup": minor(self.markup, c),
            "total": minor(self.total, c),
            "credit_notes": list(self.credit_notes),
            "run_key": self.run_key,
            "audit_head": self.audit_head,
            "audit_seq": self.audit_seq,
        }


@dataclass(frozen=True)
class Statement:
    period: str
    run_key: str
    terms: Mapping[str, CostCenterTerms]
    lines: tuple[StatementLine, ...]
    invoices: tuple[Invoice, ...]
    closed: bool

    @exact
    def totals(self) -> dict[str, dict[str, Decimal]]:
        """Per currency: the exact period total, its rounding, and the rounded sum per treatment."""
        out: dict[str, dict[str, Decimal]] = {}
        for line in self.lines:
            bucket = out.setdefault(line.currency, {"exact": Decimal(0), **{t: Decimal(0) for t in TREATMENTS}})
            bucket["exact"] += line.exact_amount
            bucket[line.treatment] += line.amount
        for currency, bucket in out.items():
            bucket["rounded"] = round_total(bucket["exact"], currency)
        return out

    @exact
    def inconsistencies(self) -> list[str]:
        """Where the invoices do not add up: lines to subtotal, subtotal and markup to total, to the statement.

        Issued documents are only read back, so this finds rows edited behind the product's back.
        """
        found = []
        for inv in self.invoices:
            c = inv.currency
            lines = sum((line.amount for line in inv.lines), Decimal(0))
            if lines != inv.subtotal:
                found.append(
                    f"invoice {inv.invoice_id}: its lines add up to {minor(lines, c)} {c}, "
                    f"its subtotal says {minor(inv.subtotal, c)}"
                )
            if inv.subtotal + inv.markup != inv.total:
                found.append(
                    f"invoice {inv.invoice_id}: subtotal {minor(inv.subtotal, c)} + markup "
                    f"{minor(inv.markup, c)} is not its total {minor(inv.total, c)} {c}"
                )
        for currency, t in sorted(self.totals().items()):
            subtotals = sum((inv.subtotal for inv in self.invoices if inv.currency == currency), Decimal(0))
            if subtotals != t["invoice"]:
                found.append(
                    f"{currency}: the invoices' subtotals add up to {minor(subtotals, currency)}, "
                    f"the statement's invoice lines to {minor(t['invoice'], currency)}"
                )
        return found

    @property
    def content_hash(self) -> str:
        return sha256_text(
            canonical_json(
                [
                    [
                        line.cost_center,
                        line.treatment,
                        line.service_name,
                        line.category,
                        line.reference,
                        line.currency,
                        line.exact_amount,
                        line.amount,
                    ]
                    for line in self.lines
                ],
                "text",
            )
        )


@exact
def resolve_terms(connection: sa.Connection, run_key: str, settings: FinanceSettings) -> dict[str, CostCenterTerms]:
    """Each cost center's mode for the run; ``auto`` becomes chargeback at the compliance threshold.

    The compliance is the tag report's share of spend carrying every required tag, recorded
    with the run; a run recorded without it (its policy requires no tags) uses the share of
    spend allocated by the ``tagged_methods``.
    """
    tagged: dict[str, Decimal] = defaultdict(Decimal)
    spend: dict[str, Decimal] = defaultdict(Decimal)
    figures = sa.select(run_tag_compliance).where(run_tag_compliance.c.run_key == run_key)
    for row in connection.execute(figures):
        spend[row.cost_center] += row.spend
        tagged[row.cost_center] += row.compliant_spend
    if not spend:
        query = sa.select(ledger_lines.c.cost_center, ledger_lines.c.method, ledger_lines.c.amount).where(
            ledger_lines.c.run_key == run_key, ledger_lines.c.stage == 0, ledger_lines.c.category != "unallocated"
        )
        for cc, method, amount in connection.execute(query):
            spend[cc] += abs(amount)
            if method in settings.tagged_methods:
                tagged[cc] += abs(amount)
    terms = {}
    for row in connection.execute(sa.select(run_cost_centers).where(run_cost_centers.c.run_key == run_key)):
        compliance = (tagged[row.cost_center] / spend[row.cost_center]) if spend[row.cost_center] else Decimal(0)
        mode = row.mode
        if mode == "auto":
            mode = "chargeback" if compliance >= settings.compliance_threshold else "showback"
        terms[row.cost_center] = CostCenterTerms(
            row.cost_center, row.name, row.mode, mode, compliance, row.gl_account, row.entity
        )
    return terms


LineKey = tuple[str, str, str, str, str]  # cost_center, currency, service_name, category, reference


def _exact_lines(
    connection: sa.Connection, period: str, run_key: str, terms: Mapping[str, CostCenterTerms], unallocated: str
) -> dict[LineKey, Decimal]:
    exact: dict[LineKey, Decimal] = defaultdict(Decimal)
    for (cc, currency, service, category), amount in aggregate_run(connection, run_key).items():
        exact[(cc, currency, service, category, "")] += amount
    query = sa.select(adjustments).where(adjustments.c.period == period)
    for adj in connection.execute(query):
        exact[(adj.cost_center, adj.currency, adj.service_name or "", "adjustment", adj.corrects_period)] += adj.amount
    for credit in pending_credits(connection, before=period):
        if credit.cost_center in terms and terms[credit.cost_center].mode == "chargeback":
            exact[(credit.cost_center, credit.currency, "", "credit", credit.dispute_id)] -= credit.amount
            exact[(unallocated, credit.currency, "", "credit", credit.dispute_id)] += credit.amount
    return exact


def _treatment(cc: str, category: str, terms: Mapping[str, CostCenterTerms], unallocated: str) -> str:
    if cc == unallocated or category == "unallocated":
        return "unallocated"
    return "invoice" if cc in terms and terms[cc].mode == "chargeback" else "showback"


@exact
def build_statement(
    connection: sa.Connection, period: Period | str, settings: FinanceSettings, witness: Witness
) -> Statement:
    """Compute the statement of an open period from the database (nothing is written)."""
    period = str(period)
    run_key = head_run(connection, period)
    if run_key is None:
        raise PeriodError(f"no run has been recorded for period {period}")
    unallocated = connection.execute(
        sa.select(runs.c.unallocated_cost_center).where(runs.c.run_key == run_key)
    ).scalar_one()
    terms = resolve_terms(connection, run_key, settings)
    exact = {k: v for k, v in _exact_lines(connection, period, run_key, terms, unallocated).items() if v != 0}
    lines: list[StatementLine] = []
    for currency in sorted({key[1] for key in exact}):
        groups: dict[tuple[str, str], list[LineKey]] = defaultdict(list)  # (cost center, treatment) -> lines
        for key in sorted(key for key in exact if key[1] == currency):
            groups[(key[0], _treatment(key[0], key[3], terms, unallocated))].append(key)
        rounded = round_groups([[exact[k] for k in keys] for keys in groups.values()], currency)
        for ((cc, treatment), keys), amounts in zip(groups.items(), rounded):
            for key, amount in zip(keys, amounts):
                _, _, service, category, reference = key
                lines.append(StatementLine(cc, treatment, service, category, reference, currency, exact[key], amount))
    invoices = _invoices(period, run_key, lines, terms, settings, witness)
    return Statement(period, run_key, terms, tuple(lines), invoices, closed=False)


def _invoices(
    period: str,
    run_key: str,
    lines: list[StatementLine],
    terms: Mapping[str, CostCenterTerms],
    settings: FinanceSettings,
    witness: Witness,
) -> tuple[Invoice, ...]:
    grouped: dict[tuple[str, str], list[StatementLine]] = defaultdict(list)
    for line in lines:
        if line.treatment == "invoice":
            grouped[(line.cost_center, line.currency)].append(line)
    invoices = []
    for (cc, currency), cc_lines in sorted(grouped.items()):
        cc_terms = terms[cc]
        subtotal = sum((line.amount for line in cc_lines), Decimal(0))
        rate = settings.markup_rate(settings.payer_entity, cc_terms.entity)
        markup = round_total(subtotal * rate, currency)
        identity = {
            "period": period,
            "cost_center": cc,
            "currency": currency,
            "markup_rate": rate,
            "markup": markup,
            "lines": [[line.service_name, line.category, line.reference, line.amount] for line in cc_lines],
        }
        invoices.append(
            Invoice(
                invoice_id=content_id("inv", identity),
                period=period,
                cost_center=cc,
                cost_center_name=cc_terms.name,
                entity=cc_terms.entity,
                payer_entity=settings.payer_entity,
                gl_account=cc_terms.gl_account,
                currency=currency,
                lines=tuple(cc_lines),
                subtotal=subtotal,
                markup_rate=rate,
                markup=markup,
                total=subtotal + markup,
                run_key=run_key,
                audit_head=witness.head,
                audit_seq=witness.seq,
            )
        )
    return tuple(invoices)
