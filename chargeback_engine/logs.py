"""The library's loggers: structlog events carried by the standard :mod:`logging` module.

A library must not print. Each module's events go to the stdlib logger of that module,
through :class:`structlog.stdlib.BoundLogger`, never to structlog's default printer on
stdout; and the package's top logger holds a :class:`logging.NullHandler`, as the logging
HOWTO asks of libraries, so a program that configures nothing sees nothing, warnings
included. A program that configures :mod:`logging` sees every event; one that follows
structlog's stdlib recipe (``LoggerFactory``, ``ProcessorFormatter``), as the ``chargeback``
CLI does, gets them rendered by its own processors.
"""

from __future__ import annotations

import logging

import structlog


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The structlog logger of module ``name`` (pass ``__name__``), writing to ``logging.getLogger(name)``.

    Plugins use it too: their package's top logger gets the same ``NullHandler``.
    """
    top = logging.getLogger(name.partition(".")[0])
    if not any(isinstance(handler, logging.NullHandler) for handler in top.handlers):
        top.addHandler(logging.NullHandler())
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name), wrapper_class=structlog.stdlib.BoundLogger
    )
    return logger
