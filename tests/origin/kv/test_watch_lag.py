"""The commit time of the newest change event a read hands over, found from the end of its body."""

from __future__ import annotations

import json

import pytest

from plugin_streams.origin.kv.events import Change, Draft, render
from plugin_streams.origin.kv.watch_lag import delivery_seconds, is_change_stream, last_commit_ms
from plugin_streams.shared.kv.keys import encode_key
from plugin_streams.shared.kv.values import encode_value
from plugin_streams.shared.offsets import Offset

START = Offset(3, 1234)


def change_stream_read(commits: list[tuple[int, object]], start: Offset = START) -> tuple[bytes, str]:
    """The body of a JSON read of consecutive commits (time ms, value of ["k"]), and its end offset."""
    messages, position = [], start
    for at_ms, value in commits:
        event, message = render(position, at_ms, Draft([Change(encode_key(["k"]), encode_value(value))]))
        messages.append(message)
        position = event.offset
    return b"[" + b",".join(messages) + b"]", str(position)


def test_the_newest_commit_of_a_read_is_found() -> None:
    body, end = change_stream_read([(1_700_000_000_001, 1), (1_700_000_000_002, 2), (1_700_000_000_345, 3)])
    assert [event["at"] for event in json.loads(body)][-1] == 1_700_000_000_345  # the fixture is what it says
    assert last_commit_ms(body, end) == 1_700_000_000_345


def test_a_single_event() -> None:
    body, end = change_stream_read([(42, "x")])
    assert last_commit_ms(body, end) == 42


def test_a_value_that_looks_like_an_event_head_is_not_taken_for_one() -> None:
    lookalike = {"versionstamp": "0" * 20, "offset": "0" * 16 + "_" + "0" * 16, "at": 999, "changes": []}
    body, end = change_stream_read([(100, 1), (200, lookalike)])
    assert body.count(b'{"versionstamp":"') == 3  # the value's copy comes after the real head
    assert last_commit_ms(body, end) == 200


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'[{"a":1}]',  # an ordinary JSON stream
        b"not json at all",
    ],
)
def test_a_body_that_is_no_change_stream_read_yields_nothing(body: bytes) -> None:
    assert last_commit_ms(body, "0000000000000001_0000000000000010") is None


def test_an_end_offset_other_than_the_reads_yields_nothing() -> None:
    body, end = change_stream_read([(100, 1), (200, 2)])
    assert last_commit_ms(body, "0000000000000003_0000000000000000") is None
    assert last_commit_ms(body, end) == 200


def test_a_damaged_head_yields_nothing() -> None:
    body, end = change_stream_read([(100, 1)])
    assert last_commit_ms(body.replace(b'"at":100,', b'"at":1x0,'), end) is None
    assert last_commit_ms(body.replace(b'"at":100,', b'"at":,'), end) is None
    assert last_commit_ms(body.replace(b'{"versionstamp":"', b'{"versionstump":"'), end) is None
    stamp_start = body.index(b'{"versionstamp":"') + len(b'{"versionstamp":"')
    not_hex = body[:stamp_start] + b"Z" + body[stamp_start + 1 :]
    assert last_commit_ms(not_hex, end) is None
    assert last_commit_ms(body[: body.index(b'"at":') + 7], end) is None  # cut inside the digits


def test_delivery_seconds_is_the_age_of_the_newest_commit_and_never_negative() -> None:
    body, end = change_stream_read([(10_000, 1), (10_500, 2)])
    assert delivery_seconds(body, end, 10_750) == 0.25
    assert delivery_seconds(body, end, 10_400) == 0  # the clock stepped back
    assert delivery_seconds(b"[]", end, 10_750) is None


def test_only_change_streams_are_measured() -> None:
    assert is_change_stream("__kv/app")
    assert not is_change_stream("app/__kv/x")
    assert not is_change_stream("orders")
