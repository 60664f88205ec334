"""aiohttp's parse errors become one debug line; a handler's crash keeps its traceback at ERROR."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from plugin_streams.shared.aio.parse_errors_log import SERVER_LOGGER, install


def _log_error(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    caplog.clear()
    logger = logging.getLogger(SERVER_LOGGER)
    try:
        raise exc
    except BaseException:
        logger.exception("Error handling request from %s", "192.0.2.1")
    return [r for r in caplog.records if r.name == SERVER_LOGGER]


@pytest.fixture(autouse=True)
def _installed() -> None:
    install()
    install()  # idempotent


def test_a_refused_request_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    assert _log_error(BadHttpMessage("Invalid header value char"), caplog) == []
    assert _log_error(LineTooLong("request line", "8190", "9000"), caplog) == []


def test_with_debug_on_it_is_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOGGER)
    (record,) = _log_error(BadHttpMessage("Invalid header value char"), caplog)
    assert record.levelno == logging.DEBUG and record.exc_info is None
    assert record.getMessage().startswith("Error handling request from 192.0.2.1: 400 ")


def test_a_handler_crash_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SERVER_LOGGER)
    (record,) = _log_error(RuntimeError("boom"), caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
