"""The origin's append lane (origin/fast_appends.py) answers exactly as aiohttp's handlers would.

Each test drives one connection of the real origin app (memory engine) with raw request bytes,
through the same FastConnection the server uses, once with the lane and once without
(`fast_appends=False`), and compares the answers byte for byte (Date aside). A spy on the lane
records which requests it took, so a lane that silently declined everything fails too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import pytest
from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from prometheus_client import CollectorRegistry

from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.fast_appends import AppendLane, stream_path
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.origin.storage.base import Record, StorageFailure
from plugin_streams.shared.aio.fast_lane import LANE, FastConnection, runner_for
from plugin_streams.shared.auth import AccessPolicy
from tests.shared.aio.test_fast_lane import Transport

BINARY = "application/octet-stream"
JSON = "application/json"
_DATE = re.compile(rb"\r\nDate: [^\r]*")
_ANSWER = re.compile(rb"HTTP/1\.1 \d{3} ")


def post(
    path: str, body: bytes = b"", content_type: str | None = BINARY, extra: Sequence[str] = (), target: str = ""
) -> bytes:
    lines = [f"POST {target or '/v1/stream/' + path} HTTP/1.1", "Host: test", *extra]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if not any(line.lower().startswith("transfer-encoding") for line in extra):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def put(path: str, content_type: str) -> bytes:
    head = f"PUT /v1/stream/{path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
    return (head + "Content-Length: 0\r\n\r\n").encode()


def get(path: str) -> bytes:
    return f"GET /v1/stream/{path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def producer(seq: int, epoch: int = 0, pid: str = "p") -> list[str]:
    return [f"Producer-Id: {pid}", f"Producer-Epoch: {epoch}", f"Producer-Seq: {seq}"]


class Spy:
    """The app's lane, recording the targets it took."""

    def __init__(self, lane: AppendLane) -> None:
        self.lane = lane
        self.body_limit = lane.body_limit
        self.taken: list[str] = []

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        taken = self.lane.take(message, conn)
        if taken:
            self.taken.append(message.path)
        return taken


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.failing = False

    async def append(self, generation: int, records: Sequence[Record]) -> None:
        if self.failing:
            raise StorageFailure("disk on fire")
        await super().append(generation, records)


class Connection:
    """One keep-alive connection of an origin app, fed raw requests one at a time."""

    def __init__(self, *, lane: bool, store: MemoryStore | None = None, **settings: object) -> None:
        config = OriginConfig(**({"engine": "memory", "fast_appends": lane} | settings))  # type: ignore[arg-type]
        self.app = build_app(config, store=store or MemoryStore(), registry=CollectorRegistry(), policy=AccessPolicy())
        self.spy: Spy | None = None
        if LANE in self.app:
            self.spy = Spy(self.app[LANE])  # type: ignore[arg-type]
            self.app[LANE] = self.spy
        self.runner = runner_for(self.app, access_log=None)
        self.transport = Transport()

    async def __aenter__(self) -> Connection:
        await self.runner.setup()
        assert self.runner.server is not None
        self.conn = self.runner.server()
        assert isinstance(self.conn, FastConnection) == (self.spy is not None)
        self.conn.connection_made(self.transport)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.conn.connection_lost(None)
        await self.runner.cleanup()

    @property
    def taken(self) -> list[str]:
        return self.spy.taken if self.spy is not None else []

    async def send(self, data: bytes, answers: int = 1) -> list[bytes]:
        """Write `data`; the next `answers` answers, Date lines removed (100 Continue ones included)."""
        transport = self.transport
        start = len(transport.written)
        async with asyncio.timeout(5):
            while True:
                if start == len(transport.written):
                    self.conn.data_received(data)
                    data = b""
                found = split(bytes(transport.written[start:]))
                if len(found) >= answers and complete(found[-1]):
                    return [_DATE.sub(b"", answer) for answer in found]
                transport.wrote.clear()
                await transport.wrote.wait()


def split(out: bytes) -> list[bytes]:
    starts = [m.start() for m in _ANSWER.finditer(out)]
    if not starts:
        return []
    return [out[a:b] for a, b in zip(starts, [*starts[1:], len(out)], strict=True)]


def complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = re.search(rb"\r\nContent-Length: (\d+)", head)
    return len(body) >= (int(match.group(1)) if match else 0)


async def both(requests: list[tuple[bytes, bool]], **settings: object) -> list[bytes]:
    """Send each request to a connection with the lane and one without; the answers must be the
    same, and the lane must have taken exactly the requests marked True."""
    async with Connection(lane=True, **settings) as fast, Connection(lane=False, **settings) as plain:
        answers = []
        for data, lane_takes in requests:
            before = len(fast.taken)
            got = await fast.send(data)
            assert got == await plain.send(data), data
            assert (len(fast.taken) > before) == lane_takes, (data, got)
            answers += got
        assert plain.taken == []
        return answers


async def test_appends_answer_as_the_handlers_do_and_take_the_lane() -> None:
    answers = await both(
        [
            (put("b", BINARY), False),
            (put("j", JSON), False),
            (post("b", b"x" * 100), True),
            (post("j", b'[1, 2, {"a": 1.50}]', JSON), True),
            (post("j", b'{"m": "\\u00e9"}', "application/json; charset=utf-8"), True),
            (post("b", b"1", extra=producer(0)), True),
            (post("b", b"1", extra=producer(0)), True),  # a duplicate: 204, the same offset
            (post("b", b"2", extra=["Stream-Seq: 2"]), True),
            (get("j"), False),
            (get("b"), False),
        ]
    )
    assert [a[:12] for a in answers] == [b"HTTP/1.1 201"] * 2 + [b"HTTP/1.1 204"] * 3 + [b"HTTP/1.1 200"] + [
        b"HTTP/1.1 204"
    ] * 2 + [b"HTTP/1.1 200"] * 2
    assert answers[8].endswith(b'[1,2,{"a":1.5},{"m":"\xc3\xa9"}]')
    assert answers[9].endswith(b"x" * 100 + b"12")


async def test_refusals_are_declined_to_the_handlers_and_change_nothing() -> None:
    answers = await both(
        [
            (put("b", BINARY), False),
            (put("j", JSON), False),
            (post("b", b"2", extra=["Stream-Seq: 2"]), True),
            (post("b", b"10", extra=["Stream-Seq: 10"]), False),  # byte-wise not greater: 409
            (post("b", b"x", JSON), False),  # content type mismatch: 409
            (post("j", b"[1,", JSON), False),  # invalid JSON: 400
            (post("j", b"[]", JSON), False),  # an empty batch: 400
            (post("b", b""), False),  # an empty body without a close: 400
            (post("b", b"y", None), False),  # a body without Content-Type: 400
            (post("nope", b"y"), False),  # no such stream: 404
            (post("b", b"1", extra=producer(0)), True),
            (post("b", b"1", extra=producer(5)), False),  # sequence gap: 409
            (post("b", b"1", extra=[*producer(0)[:2]]), False),  # incomplete producer headers: 400
            (post("b", b"", None, extra=["Stream-Closed: true"]), True),  # close-only: 204
            (post("b", b"z"), False),  # closed: 409 with the final offset
            (post("b", b"", None, extra=["Stream-Closed: true"]), True),  # a repeated close: 204
            (get("b"), False),
        ]
    )
    statuses = [int(a[9:12]) for a in answers]
    assert statuses == [201, 201, 204, 409, 409, 400, 400, 400, 400, 404, 200, 409, 400, 204, 409, 204, 200]
    assert answers[-1].endswith(b"21")


async def test_what_aiohttp_acts_on_first_goes_its_way() -> None:
    await both(
        [
            (put("b", BINARY), False),
            (put("j", JSON), False),
            (post("b", b"q", target="/v1/stream/b?x=1"), False),  # a query
            (post("b", b"e", target="/v1/stream/%62"), False),  # needs decoding
            (post("b", b"c", extra=["Content-Encoding: identity"]), False),
            (post("b", b"", extra=["Transfer-Encoding: chunked"]) + b"1\r\nk\r\n0\r\n\r\n", False),
            (post("b", b"x" * (70 * 1024)), False),  # over the lane's body limit
            (post("j", b'["' + b"s" * (40 * 1024) + b'"]', JSON), False),  # JSON validated off the loop
            (post("__ds/x", b"s"), False),  # the subscription API's
            (post("a/../b", b"s"), False),  # a path the handlers refuse
            (get("b"), False),
        ]
    )


async def test_expect_and_connection_close_go_aiohttps_way() -> None:
    for extra, count in ((["Expect: 100-continue"], 2), (["Connection: close"], 1)):
        async with Connection(lane=True) as fast:
            await fast.send(put("b", BINARY))
            answers = await fast.send(post("b", b"x", extra=extra), answers=count)
            assert answers[-1].startswith(b"HTTP/1.1 204") and fast.taken == []


async def test_pipelined_appends_are_answered_in_order_with_rising_offsets() -> None:
    async with Connection(lane=True) as fast:
        await fast.send(put("b", BINARY))
        answers = await fast.send(b"".join(post("b", b"%03d" % i) for i in range(100)), answers=100)
        assert len(fast.taken) == 100
        offsets = [re.search(rb"Stream-Next-Offset: (\S+)", a).group(1) for a in answers]  # type: ignore[union-attr]
        assert offsets == sorted(offsets) and len(set(offsets)) == 100
        (content,) = await fast.send(get("b"))
        assert content.endswith(b"".join(b"%03d" % i for i in range(100)))


async def test_a_failed_write_is_answered_as_the_error_middleware_would() -> None:
    stores = FailingStore(), FailingStore()
    async with Connection(lane=True, store=stores[0]) as fast, Connection(lane=False, store=stores[1]) as plain:
        for conn in (fast, plain):
            await conn.send(put("b", BINARY))
        for store in stores:
            store.failing = True
        failed = await fast.send(post("b", b"x"))
        assert failed == await plain.send(post("b", b"x"))
        assert failed[0].startswith(b"HTTP/1.1 503") and fast.taken == ["/v1/stream/b"]
        for store in stores:
            store.failing = False
        assert await fast.send(post("b", b"y")) == await plain.send(post("b", b"y"))
        assert await fast.send(get("b")) == await plain.send(get("b"))


@pytest.mark.parametrize("settings", [{"rate_limit": 100.0}, {"fast_appends": False}])
def test_no_lane_where_middlewares_decide_or_when_turned_off(settings: dict[str, object]) -> None:
    config = OriginConfig(**({"engine": "memory"} | settings))  # type: ignore[arg-type]
    app: web.Application = build_app(config, store=MemoryStore(), registry=CollectorRegistry(), policy=AccessPolicy())
    assert LANE not in app


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/v1/stream/a/b", "a/b"),
        ("/v1/stream/__dsx", "__dsx"),
        ("/v1/stream/__ds", None),
        ("/v1/stream/__ds/x", None),
        ("/v1/stream/a%2Fb", None),
        ("/v1/stream/a?b", None),
        ("/v1/stream/a#b", None),
        ("/v1/stream/é", None),
        ("/v1/stream/", None),
        ("/v1/stream/a//b", None),
        ("/v1/streams/a", None),
        ("/kv/api/v1/x", None),
    ],
)
def test_stream_path_takes_only_targets_the_stream_handlers_get_undecoded(target: str, path: str | None) -> None:
    assert stream_path(target) == path


@pytest.mark.parametrize("lane", [True, False])
async def test_a_duplicate_after_a_failed_write_is_still_a_duplicate(lane: bool) -> None:
    """A producer's retry of an acknowledged append depends on no later write: once a later
    write has failed (and nothing was written since), the retry is still answered 204, not 503."""
    store = FailingStore()
    async with Connection(lane=lane, store=store) as conn:
        await conn.send(put("b", BINARY))
        (acked,) = await conn.send(post("b", b"a", extra=producer(0)))
        assert acked.startswith(b"HTTP/1.1 200")
        store.failing = True
        (failed,) = await conn.send(post("b", b"b", extra=producer(1)))
        assert failed.startswith(b"HTTP/1.1 503")
        store.failing = False
        (retry,) = await conn.send(post("b", b"a", extra=producer(0)))
        assert retry.startswith(b"HTTP/1.1 204"), retry
