"""Paged results: the ways providers lose or repeat money between pages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chargeback_engine.canonical import sha256_hex
from chargeback_engine.collect.progress import report_progress
from chargeback_engine.errors import InputError
from chargeback_engine.logs import get_logger

log = get_logger(__name__)


@dataclass
class PageLog:
    """Watches a paged result for the ways providers lose or repeat money.

    A page identical to an earlier non-empty page is skipped (it would double-count); a
    next-page token seen before is an error (following it would loop); a last page holding
    exactly the page limit is a warning, because some APIs end there without saying so.
    """

    what: str
    page_limit: int | None = None
    pages: int = 0
    rows: int = 0
    duplicate_pages: int = 0
    possibly_truncated: bool = False
    _seen_pages: set[str] = field(default_factory=set, repr=False)
    _seen_tokens: set[str] = field(default_factory=set, repr=False)

    def accept(self, rows: Sequence[Any], next_token: str | None) -> bool:
        """Record a page; False means it repeats an earlier page and must be skipped."""
        self.pages += 1
        if next_token is not None:
            if next_token in self._seen_tokens:
                raise InputError(f"{self.what}: page {self.pages} points back to a page already read")
            self._seen_tokens.add(next_token)
        elif self.page_limit is not None and len(rows) == self.page_limit:
            self.possibly_truncated = True
            log.warning(
                "collector.page_limit_without_next",
                what=self.what,
                page=self.pages,
                rows=len(rows),
                hint="the last page is exactly the page limit and has no next link; data may be missing",
            )
        if rows:
            digest = sha256_hex(json.dumps(rows, sort_keys=True, default=str))
            if digest in self._seen_pages:
                self.duplicate_pages += 1
                log.warning("collector.duplicate_page", what=self.what, page=self.pages)
                return False
            self._seen_pages.add(digest)
        self.rows += len(rows)
        report_progress(self.what, self.pages)
        return True

    def as_details(self) -> dict[str, int | bool]:
        return {
            "pages": self.pages,
            "duplicate_pages": self.duplicate_pages,
            "possibly_truncated": self.possibly_truncated,
        }
