"""plugin_streams.cli.common: every failure of the client becomes one line and an exit status."""

from __future__ import annotations

import argparse
import errno
import json
from collections.abc import Awaitable, Callable

import pytest

from plugin_streams.cli import common
from plugin_streams.cli.urls import InvalidURL
from plugin_streams.errors import NotFound


def fails_with(error: BaseException) -> Callable[[], Awaitable[int]]:
    async def main() -> int:
        raise error

    return main


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (InvalidURL("invalid URL 'x': no http://"), 2, "plugin-streams: invalid URL 'x': no http://"),
        (NotFound("stream not found", code="stream_not_found"), 1, "plugin-streams: stream not found (stream_"),
        (OSError(errno.ENOSPC, "No space left on device"), 1, "plugin-streams: no space left on device"),
        (json.JSONDecodeError("Expecting value", "<html>", 0), 1, "plugin-streams: the server's answer is not"),
    ],
)
def test_failures_are_one_line_and_a_status(
    error: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert common.run_async(fails_with(error)) == status
    [said] = capsys.readouterr().err.splitlines()
    assert said.startswith(line)


def test_ctrl_c_is_130_and_a_bug_is_still_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert common.run_async(fails_with(KeyboardInterrupt())) == common.EXIT_INTERRUPTED
    with pytest.raises(ZeroDivisionError):  # not the user's fault: worth its traceback
        common.run_async(fails_with(ZeroDivisionError()))


def test_the_client_refuses_bad_urls_before_any_request() -> None:
    args = argparse.Namespace(url="localhost:4437", token=None, api=None)
    with pytest.raises(InvalidURL, match="did you mean http://localhost:4437"):
        common.client(args)
    mixed = argparse.Namespace(url="http://a:1,http://b:2/v1/stream", token=None, api=None)
    with pytest.raises(InvalidURL, match="different APIs"):
        common.client(mixed)


def test_the_client_gives_up_on_refused_connects_unless_told_to_wait() -> None:
    args = argparse.Namespace(url="http://a:1", token=None, api=None)
    assert common.client(args).transport.unreachable_retry_for == common.UNREACHABLE_RETRY_FOR
    assert common.client(args, fail_fast=False).transport.unreachable_retry_for is None
