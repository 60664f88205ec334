"""plugin_streams.cli.failures: every client error as one line naming what failed."""

from __future__ import annotations

import errno
import socket
from typing import Any

import aiohttp
import pytest

from plugin_streams.cli.failures import briefly, describe
from plugin_streams.errors import NotFound, Unavailable, error_from


def connector_error(host: str, port: int, os_error: OSError) -> aiohttp.ClientConnectorError:
    key: Any = type("Key", (), {"host": host, "port": port, "ssl": True})()
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(
    ("os_error", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "name not resolved"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (OSError(errno.EACCES, "Permission denied"), "permission denied"),
    ],
)
def test_a_failed_connect_names_the_address_and_the_reason(os_error: OSError, reason: str) -> None:
    assert describe(connector_error("127.0.0.1", 9, os_error)) == f"cannot connect to 127.0.0.1:9 ({reason})"


def test_unavailable_is_described_by_its_cause_and_request() -> None:
    refused = connector_error("127.0.0.1", 9, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    error = Unavailable("GET http://127.0.0.1:9/x: ...", details={"request": "GET http://127.0.0.1:9/x"})
    error.__cause__ = refused
    assert describe(error) == "cannot connect to 127.0.0.1:9 (connection refused)"
    error.__cause__ = aiohttp.ServerDisconnectedError()
    assert describe(error) == "GET http://127.0.0.1:9/x: the server closed the connection"
    error.__cause__ = TimeoutError()
    assert describe(error) == "GET http://127.0.0.1:9/x: no answer in time (timed out)"


def test_server_errors_keep_their_message_and_code_on_one_line() -> None:
    body = b'{"error": {"code": "stream_not_found", "message": "stream not found:\\n c/x"}}'
    assert describe(error_from(404, body)) == "stream not found: c/x (stream_not_found)"
    assert describe(NotFound("stream not found")) == "stream not found"
    assert describe(error_from(503, b"<html>busy</html>")) == "<html>busy</html>"


def test_anything_else_is_still_one_line() -> None:
    assert describe(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"
    assert describe(RuntimeError("two\nlines")) == "RuntimeError: two lines"


def test_briefly_leaves_the_address_to_the_line_that_names_it() -> None:
    refused = connector_error("127.0.0.1", 9, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert briefly(refused) == "connection refused"
    assert briefly(aiohttp.ServerDisconnectedError()) == "the server closed the connection"


def test_a_wrapped_answer_is_described_by_what_it_wraps() -> None:
    class RetryLater(Exception):
        def __init__(self, error: Exception) -> None:
            super().__init__(str(error))
            self.error = error

    assert describe(RetryLater(error_from(429, b"slow down"))) == "slow down"
