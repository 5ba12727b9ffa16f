"""Everything a plugin author needs, from one stable import: ``from chargeback_engine.plugin import ...``.

``chargeback_engine``, ``chargeback_engine.plugin`` and ``chargeback_engine.testing`` are
the stable imports; every other module is internal and may move or change between
releases. The names below keep their meaning across releases: the hook marker, the
component protocols and what they exchange with the host, the error classes, the
policy-schema helpers, and the collector toolkit (retries, paging, SDK log redaction,
export files, the one normaliser) that the built-in and cloud collectors use.
``docs/writing-plugins.md`` lists the same names, and a test keeps the two in step.
"""

from __future__ import annotations

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.collect import (
    BATCH_ROWS,
    DEADLINE_SCHEMA,
    BatchMapper,
    Clock,
    PageLog,
    ProgressListener,
    RetryPolicy,
    SecretRedactor,
    SystemClock,
    content_version,
    decimal_from_double,
    focus_mapper,
    iter_file_batches,
    listening,
    redact_sdk_logs,
    report_progress,
    table_details,
    tags_json,
)
from chargeback_engine.components import (
    Alert,
    AllocationContext,
    Allocator,
    Amortize,
    CollectedSource,
    Collector,
    DirectCostBasis,
    Exporter,
    Finding,
    Notifier,
    Resolution,
    RunInput,
    RunResult,
    RunStore,
    Shares,
    fallback_shares,
)
from chargeback_engine.durable_files import write_atomic, write_table_atomic
from chargeback_engine.enrich.model import SCOPES, Enricher, Scope, TagRecord, base_options
from chargeback_engine.errors import (
    ChargebackError,
    ConservationError,
    Diagnostic,
    InputError,
    NotifyError,
    PeriodError,
    PluginError,
    PolicyError,
)
from chargeback_engine.focus import (
    COST_TABLE_SCHEMA,
    ENCODED_TEXT,
    FOCUS_COLUMNS,
    MONEY,
    MONEY_COLUMNS,
    REQUIRED_COLUMNS,
    TIMESTAMP,
    conform,
    empty_cost_table,
    plain,
    plain_schema,
    read_parquet_columns,
)
from chargeback_engine.hookspecs import hookimpl
from chargeback_engine.logs import get_logger
from chargeback_engine.normalise import Rounding, normalise, to_money
from chargeback_engine.periods import Period
from chargeback_engine.policy.checks import known_cost_centers, suggestion, unknown_cost_centers
from chargeback_engine.policy.match import TAG_PREFIX, Condition, compile_condition
from chargeback_engine.policy.policy_model import AllocationSpec, Policy
from chargeback_engine.policy.schema import ALLOCATE_REF, COST_CENTER_ID_REF, WHEN_REF

__all__ = [
    # hooks and logging
    "hookimpl",
    "get_logger",
    # component protocols and what they exchange with the host
    "AllocationContext",
    "Allocator",
    "Collector",
    "Enricher",
    "Exporter",
    "Notifier",
    "RunInput",
    "RunResult",
    "RunStore",
    "Alert",
    "Amortize",
    "CollectedSource",
    "DirectCostBasis",
    "Finding",
    "Period",
    "Resolution",
    "SCOPES",
    "Scope",
    "Shares",
    "TagRecord",
    "fallback_shares",
    # errors
    "ChargebackError",
    "ConservationError",
    "Diagnostic",
    "InputError",
    "NotifyError",
    "PeriodError",
    "PluginError",
    "PolicyError",
    # policies and their schema
    "ALLOCATE_REF",
    "COST_CENTER_ID_REF",
    "WHEN_REF",
    "TAG_PREFIX",
    "AllocationSpec",
    "Condition",
    "Policy",
    "base_options",
    "compile_condition",
    "known_cost_centers",
    "suggestion",
    "unknown_cost_centers",
    # the FOCUS cost table
    "COST_TABLE_SCHEMA",
    "ENCODED_TEXT",
    "FOCUS_COLUMNS",
    "MONEY",
    "MONEY_COLUMNS",
    "REQUIRED_COLUMNS",
    "TIMESTAMP",
    "conform",
    "empty_cost_table",
    "plain",
    "plain_schema",
    "read_parquet_columns",
    # the collector toolkit
    "BATCH_ROWS",
    "DEADLINE_SCHEMA",
    "BatchMapper",
    "Clock",
    "PageLog",
    "ProgressListener",
    "RetryPolicy",
    "Rounding",
    "SecretRedactor",
    "SystemClock",
    "content_version",
    "decimal_from_double",
    "focus_mapper",
    "iter_file_batches",
    "listening",
    "normalise",
    "redact_sdk_logs",
    "report_progress",
    "table_details",
    "tags_json",
    "write_atomic",
    "write_table_atomic",
    "sha256_hex",
    "to_money",
]
