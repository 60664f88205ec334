"""Units of the regions feature: path patterns, the change log's window, configuration JSON."""

from __future__ import annotations

import asyncio

import pytest

from plugin_streams.edge.region.patterns import PathPatterns
from plugin_streams.origin.replication.changes import ChangeLog
from plugin_streams.origin.storage.base import ForkLink, StreamConfig
from plugin_streams.origin.storage.config_fields import config_from_fields, config_to_fields
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared.parse import Expiry, Retention


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["**"], "a/b/c", True),
        (["orders/*"], "orders/eu", True),
        (["orders/*"], "orders/eu/1", False),
        (["orders/**"], "orders/eu/1", True),
        (["orders/**"], "ordersx", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["x.y"], "xzy", False),  # the dot is literal
        ([], "anything", False),
        (["one", "two/*"], "two/2", True),
    ],
)
def test_path_patterns(patterns: list[str], path: str, expected: bool) -> None:
    assert PathPatterns(patterns).matches(path) is expected


def _state(path: str, generation: int = 1) -> StreamState:
    return StreamState(StreamConfig(generation, path, "text/plain", None, None, 0), None, 0)


async def test_change_log_resumes_within_its_window_and_asks_for_a_resync_outside_it() -> None:
    log = ChangeLog(window=3)
    for i in range(5):
        log.created(_state(f"s{i}", i + 1))
    assert log.seq == 5
    lines = log.since(log.epoch, 2)
    assert lines is not None and [b'"seq":3' in line for line in lines] == [True, False, False]
    assert log.since(log.epoch, 1) is None  # event 2 rolled out of the window
    assert log.since("another-epoch", 4) is None  # the origin restarted
    assert log.since(log.epoch, 9) is None  # from the future
    assert log.since(log.epoch, 5) == []
    waiter = asyncio.ensure_future(log.wait(5, timeout=5))
    await asyncio.sleep(0)
    log.gone(_state("s0", 1), "deleted")
    async with asyncio.timeout(1):
        await waiter
    assert b'"type":"deleted"' in (log.since(log.epoch, 5) or [b""])[0]


def test_configuration_json_round_trips() -> None:
    config = StreamConfig(
        generation=7,
        path="a/b",
        content_type="application/json",
        ttl_seconds=None,
        expires=Expiry(1_800_000_000_000, "2027-01-15T08:00:00Z"),
        created_ms=123,
        fork=ForkLink(3, "src", 42, "0000000000000003_0000000000000042", 2),
        soft_deleted=True,
        retention=Retention(60, None),
        max_size=1000,
    )
    assert config_from_fields(config_to_fields(config)) == config
    plain = StreamConfig(1, "p", "text/plain", 30, None, 0)
    assert config_from_fields(config_to_fields(plain)) == plain
