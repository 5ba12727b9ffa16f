"""One error hierarchy, so that embedders can catch ``ChargebackError`` and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A located finding about a policy or an input file, printed compiler-style."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.path}: {self.message}"


def excerpt(text: object, limit: int = 32) -> str:
    """A short, escaped quote of input text for an error message: enough to find the value,
    never a file's content (a policy may point at a file its author cannot read)."""
    text = str(text)
    return repr(text[:limit] + "…") if len(text) > limit else repr(text)


class ChargebackError(Exception):
    """Base of every error the library raises on purpose."""


class PolicyError(ChargebackError):
    """A policy file is invalid; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        super().__init__("\n".join(str(d) for d in errors) or "invalid policy")


class PluginError(ChargebackError):
    """A plugin failed to import, registered something invalid, or raised inside a hook."""


class InputError(ChargebackError):
    """Cost data could not be read; the message names the file, row and column."""


class ConservationError(ChargebackError):
    """Allocated money does not add up to the input money; nothing is written."""


class PeriodError(ChargebackError):
    """A period is malformed, closed, or not covered by any policy."""


class NotifyError(ChargebackError):
    """A notifier is misconfigured or could not deliver; the alert stays unsent."""
