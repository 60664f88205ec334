"""plugin_streams.cli.tail: the give-up flags and the reconnect report."""

from __future__ import annotations

import argparse
import errno
from typing import Any

import aiohttp
import pytest

from plugin_streams._transport import Transport
from plugin_streams.cli import tail
from plugin_streams.cli.progress import Progress
from plugin_streams.errors import error_from


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tail.configure(parser)
    return parser.parse_args(["s", *argv])


@pytest.mark.parametrize(
    ("argv", "patience"),
    [([], 60.0), (["--give-up-after", "2.5"], 2.5), (["--give-up-after", "0"], None), (["--retry-forever"], None)],
)
def test_give_up_after(argv: list[str], patience: float | None) -> None:
    assert tail.give_up_after(parse(*argv)) == patience


@pytest.mark.parametrize("argv", [["--give-up-after", "-1"], ["--give-up-after", "nan"], ["--give-up-after", "x"]])
def test_a_bad_give_up_after_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_the_two_give_up_flags_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse("--retry-forever", "--give-up-after", "5")


class Drawn(Progress):
    def __init__(self) -> None:
        super().__init__("tailing s", enabled=False)
        self.cleared = 0

    def clear(self) -> None:
        self.cleared += 1


def test_each_reconnect_is_one_line_naming_where_when_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    transport = Transport("http://127.0.0.1:9")
    progress = Drawn()
    report = tail.ReconnectReport(transport, progress)
    key: Any = type("Key", (), {"host": "127.0.0.1", "port": 9, "ssl": True})()
    report(aiohttp.ClientConnectorError(key, ConnectionRefusedError(errno.ECONNREFUSED, "refused")), 1.234)
    report(error_from(503, b'{"error": {"code": "unavailable", "message": "draining"}}'), 0.5)
    assert capsys.readouterr().err.splitlines() == [
        "plugin-streams: reconnecting to http://127.0.0.1:9/streams/api/v1 in 1.2s (connection refused)",
        "plugin-streams: reconnecting to http://127.0.0.1:9/streams/api/v1 in 0.5s (draining (unavailable))",
    ]
    assert report.attempts == 2 and progress.cleared == 2
