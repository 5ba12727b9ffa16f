"""Progress of a collection, for whoever shows it (a terminal, a service)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chargeback_engine.logs import get_logger

log = get_logger(__name__)

#: Called with (what, done, total or None) as a collector reads; set by whoever shows progress.
ProgressListener = Callable[[str, int, int | None], None]
_listener: ContextVar[ProgressListener | None] = ContextVar("chargeback_progress_listener", default=None)


def report_progress(what: str, done: int, total: int | None = None) -> None:
    """Tell whoever is watching that ``done`` pages or files of ``what`` (of ``total``, when known) are read.

    Collectors call it after each page or file, so a terminal can show movement while a
    cloud API pages or a large file is read. :class:`PageLog` calls it for every page. It
    costs nothing when nobody listens, and a listener's failure never stops a collection.
    """
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(what, done, total)
    except Exception:
        log.debug("progress.listener_failed", what=what, exc_info=True)


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send :func:`report_progress` calls made in this context (and this thread) to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
