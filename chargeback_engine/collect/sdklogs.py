"""Credentials that SDKs print in their own DEBUG logs, blanked before they reach a handler."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from chargeback_engine.redact import redact


class SecretRedactor(logging.Filter):
    """Blanks credentials that SDKs print in their own DEBUG logs (signed headers, STS replies).

    botocore, for one, logs the session token inside every signed request at DEBUG. The
    library never configures logging; it only attaches this filter to the SDK loggers that
    are known to print credentials, so a user who turns DEBUG on does not leak them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = SecretRedactor()


def redact_sdk_logs(logger_names: Sequence[str], secrets: Sequence[str | None] = ()) -> None:
    """Attach the shared :class:`SecretRedactor` to ``logger_names`` (once) and teach it ``secrets``."""
    _REDACTOR.secrets.update(s for s in secrets if s and len(s) >= 8)
    for name in logger_names:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)
