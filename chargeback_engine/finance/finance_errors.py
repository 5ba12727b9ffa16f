"""Errors of the finance workflow; all derive from :class:`ChargebackError`."""

from __future__ import annotations

from chargeback_engine.errors import ChargebackError


class FinanceError(ChargebackError):
    """Base of the finance errors."""


class SettingsError(FinanceError):
    """The finance settings file is malformed; the message names the file and the key."""


class RunConflictError(FinanceError):
    """A run with this key was already recorded with different content."""


class ClosedPeriodError(FinanceError):
    """An operation would rewrite a closed period, or periods are closed out of order."""


class DisputeError(FinanceError):
    """An unknown dispute, or a transition its current status does not allow."""


class JournalError(FinanceError):
    """A journal entry does not balance per currency."""
