"""Requests aiohttp's parser refuses are the client's fault: one debug line, never a traceback.

aiohttp answers a malformed request (a bad character in the target or a header, an over-long
line, a missing Host) with a 4xx and logs it at ERROR with a full traceback, except a bad
method on a connection's first request. Any anonymous client can send those by the hundred a
second, so on a process facing the internet they would flood the log and bury real errors.
Everything else aiohttp logs there (a handler's unhandled exception: a 500) stays as it is.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class ParseErrorsToDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or record.levelno < logging.WARNING:
            return True
        status = getattr(exc, "code", 400)
        if not 400 <= status < 500:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        record.msg = f"{record.getMessage()}: {status} {exc.message[:200]!r}"
        record.args = ()
        record.exc_info = record.exc_text = None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def install() -> None:
    """Idempotent: the filter sits once on aiohttp's server logger."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ParseErrorsToDebug) for f in logger.filters):
        logger.addFilter(ParseErrorsToDebug())
