"""Errors in words: one line naming what failed, for the CLI's stderr (never a traceback).

The client raises its own `StreamsError` tree; `Unavailable` keeps the network error of its last
attempt as `__cause__` (a failed connect names the address tried) and the request as
`details["request"]`. Network errors that reach the CLI
directly (a tail's reconnect reports them) are described the same way.
"""

from __future__ import annotations

import errno
import socket

import aiohttp

from plugin_streams.errors import StreamsError, Unavailable

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}


def describe(exc: BaseException) -> str:
    """What failed, in one line (no trailing newline)."""
    if isinstance(exc, StreamsError):
        return _streams_error(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response was cut short"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL {str(exc.url)!r}"
    if isinstance(exc, TimeoutError):
        return "no answer in time (timed out)"
    if isinstance(exc, OSError):
        return reason(exc)
    wrapped = getattr(exc, "error", None)
    if isinstance(wrapped, BaseException):  # a tail's "retry later" carries the server's answer
        return describe(wrapped)
    return _one_line(f"{type(exc).__name__}: {exc}")


def briefly(exc: BaseException) -> str:
    """Why an attempt failed, where the address is said already ("connection refused", ...)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return reason(exc.os_error)
    return describe(exc)


def reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words ("connection refused", "name not resolved", ...)."""
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[exc.errno]
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return _one_line(str(exc) or type(exc).__name__)


def _streams_error(exc: StreamsError) -> str:
    cause = exc.__cause__
    if isinstance(exc, Unavailable) and cause is not None:
        # A connect failure names its address; any other failure is named with its request.
        request = exc.details.get("request")
        if isinstance(cause, aiohttp.ClientConnectorError) or not request:
            return describe(cause)
        return f"{request}: {describe(cause)}"
    text = _one_line(exc.message)
    if exc.code not in ("error", "") and exc.code not in text:
        text += f" ({exc.code})"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())
