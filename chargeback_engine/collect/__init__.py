"""Building blocks for collectors: the traps every cloud API shares, solved once.

Every cloud collector pages through results (:mod:`.paging`), retries throttled calls
(:mod:`.retry`), keeps credentials out of SDK logs (:mod:`.sdklogs`) and streams export
files far larger than memory (:mod:`.files`); what it reads then goes through the one
normaliser (:mod:`chargeback_engine.normalise`) that ``focus-files`` uses too, and is
versioned and described for the manifest (:mod:`.tables`). Doing each of these one way,
here, keeps the provider plugins short and equally careful, and gives a third-party
collector the same guarantees for free.

Internal package: plugin authors import these names from :mod:`chargeback_engine.plugin`.
"""

from __future__ import annotations

from chargeback_engine.collect.export_files import BATCH_ROWS, BatchMapper, focus_mapper, iter_file_batches
from chargeback_engine.collect.paging import PageLog
from chargeback_engine.collect.progress import ProgressListener, listening, report_progress
from chargeback_engine.collect.retry import DEADLINE_SCHEMA, Clock, RetryPolicy, SystemClock
from chargeback_engine.collect.sdklogs import SecretRedactor, redact_sdk_logs
from chargeback_engine.collect.table_facts import content_version, decimal_from_double, table_details, tags_json

__all__ = [
    "BATCH_ROWS",
    "DEADLINE_SCHEMA",
    "BatchMapper",
    "Clock",
    "PageLog",
    "ProgressListener",
    "RetryPolicy",
    "SecretRedactor",
    "SystemClock",
    "content_version",
    "decimal_from_double",
    "focus_mapper",
    "iter_file_batches",
    "listening",
    "redact_sdk_logs",
    "report_progress",
    "table_details",
    "tags_json",
]
