"""The finance workflow: the cost database, periods, invoices, journals, disputes and audit.

Everything here takes a SQLAlchemy engine from :func:`open_database`; the ``chargeback``
commands ``ledger``, ``period``, ``invoice``, ``journal``, ``dispute`` and ``audit`` are one
call each into these functions.
"""

from chargeback_engine.costdb.connection import database_url, open_database
from chargeback_engine.finance.audit import AuditReport, Witness, verify_audit_chain, witnesses_in
from chargeback_engine.finance.disputes import (
    Dispute,
    comment,
    dispute_report,
    list_disputes,
    submit_dispute,
    transition,
)
from chargeback_engine.finance.documents import INVOICE_FORMATS, export_invoices, export_statement
from chargeback_engine.finance.erp import ERP_EXPORTERS, export_journal
from chargeback_engine.finance.finance_errors import (
    ClosedPeriodError,
    DisputeError,
    FinanceError,
    JournalError,
    RunConflictError,
    SettingsError,
)
from chargeback_engine.finance.journal import JournalBatch, JournalEntry, JournalLine, correct_journal, load_journal
from chargeback_engine.finance.period_close import CloseResult, close_period, period_statuses, statement
from chargeback_engine.finance.runs import IngestResult, RunInput, ingest_run, run_from_files
from chargeback_engine.finance.settings import FinanceSettings, load_settings
from chargeback_engine.finance.statements import Invoice, Statement, StatementLine

__all__ = [
    "AuditReport",
    "ClosedPeriodError",
    "CloseResult",
    "Dispute",
    "DisputeError",
    "ERP_EXPORTERS",
    "FinanceError",
    "FinanceSettings",
    "INVOICE_FORMATS",
    "IngestResult",
    "Invoice",
    "JournalBatch",
    "JournalEntry",
    "JournalError",
    "JournalLine",
    "RunConflictError",
    "RunInput",
    "SettingsError",
    "Statement",
    "StatementLine",
    "close_period",
    "comment",
    "correct_journal",
    "database_url",
    "dispute_report",
    "export_invoices",
    "export_statement",
    "export_journal",
    "ingest_run",
    "list_disputes",
    "load_journal",
    "load_settings",
    "open_database",
    "period_statuses",
    "run_from_files",
    "statement",
    "submit_dispute",
    "transition",
    "verify_audit_chain",
    "Witness",
    "witnesses_in",
]
