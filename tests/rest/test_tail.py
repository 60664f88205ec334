"""REST tails against a real origin: SSE ids and resume by Last-Event-ID, heartbeats, closure,
max age, and the long-poll fallback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.rest.helpers import append, create, stream_url
from tests.support.processes import OriginProcess
from tests.support.sse_reader import SSEReader


async def test_sse_events_carry_offsets_as_ids(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [{"a": 1}, "two"])
    async with http.get(stream_url(api, name, "tail")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["Stream-Message-Format"] == "json"
        reader = SSEReader(r)
        events = await reader.take(2)
        assert [(e.event, e.id, json.loads(e.data)) for e in events] == [
            ("message", made["offsets"][0], {"a": 1}),
            ("message", made["offsets"][1], "two"),
        ]
        later = await append(http, api, name, 3)  # live
        event = await reader.next()
        assert event is not None and (event.id, event.data) == (later["offsets"][0], "3")


async def test_resume_by_last_event_id_takes_precedence(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [0, 1, 2, 3, 4])
    headers = {"Last-Event-ID": made["offsets"][2]}
    params = {"after": made["offsets"][0]}
    async with http.get(stream_url(api, name, "tail"), params=params, headers=headers) as r:
        events = await SSEReader(r).take(2)
    assert [e.data for e in events] == ["3", "4"]
    async with http.get(stream_url(api, name, "tail"), params=params) as r:
        assert [e.data for e in await SSEReader(r).take(4)] == ["1", "2", "3", "4"]
    async with http.get(stream_url(api, name, "tail"), headers={"Last-Event-ID": "junk"}) as r:
        assert r.status == 400


async def test_after_now_starts_at_the_tail(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [1, 2])
    async with http.get(stream_url(api, name, "tail"), params={"after": "now"}) as r:
        assert r.headers["Stream-Start-Offset"] == made["next_offset"]
        reader = SSEReader(r)
        await asyncio.sleep(0.2)
        await append(http, api, name, 3)
        event = await reader.next()
        assert event is not None and event.data == "3"


async def test_heartbeats_while_idle(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    async with http.get(stream_url(api, name, "tail")) as r:
        reader = SSEReader(r)
        with pytest.raises(TimeoutError):
            await reader.next(timeout=1.2)  # the origin runs with --sse-keepalive 0.3
        assert reader.raw.count(b":\n\n") >= 2


async def test_closure_ends_the_tail_with_a_closed_event(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name, content_type="text/plain")
    await append(http, api, name, b"first\nline")
    async with http.get(stream_url(api, name, "tail")) as r:
        assert r.headers["Stream-Message-Format"] == "text"
        reader = SSEReader(r)
        first = await reader.next()
        assert first is not None and first.data == "first\nline"  # multi-line data survives
        async with http.post(stream_url(api, name, "append"), data=b"last", headers={"Stream-Closed": "true"}) as a:
            final = (await a.json())["next_offset"]
        last, closed = await reader.take(2)
        assert last.data == "last" and last.id == final
        assert closed.event == "closed" and json.loads(closed.data) == {"next_offset": final}
        assert await reader.next() is None  # the response ended
    # Tailing a closed stream from its end: just the closed event.
    async with http.get(stream_url(api, name, "tail"), headers={"Last-Event-ID": final}) as r:
        reader = SSEReader(r)
        event = await reader.next()
        assert event is not None and event.event == "closed"
        assert await reader.next() is None


async def test_binary_tail_is_base64(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name, content_type="application/octet-stream")
    await append(http, api, name, b"\x00\xff\n")
    async with http.get(stream_url(api, name, "tail")) as r:
        assert r.headers["Stream-Message-Format"] == "base64"
        event = await SSEReader(r).next()
        assert event is not None and base64.b64decode(event.data) == b"\x00\xff\n"


async def test_deleting_the_stream_ends_the_tail(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    async with http.get(stream_url(api, name, "tail")) as r:
        reader = SSEReader(r)
        async with http.delete(stream_url(api, name)) as d:
            assert d.status == 204
        assert await reader.next(timeout=5) is None


async def test_long_poll(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [1, 2])
    url = stream_url(api, name, "tail")
    async with http.get(url, params={"mode": "long-poll"}) as r:  # data at once
        assert r.status == 200
        page = await r.json()
        assert [m["data"] for m in page["messages"]] == [1, 2] and page["up_to_date"] is True
    started = time.monotonic()
    async with http.get(url, params={"mode": "long-poll", "after": made["next_offset"]}) as r:
        assert r.status == 204  # the origin's long-poll timeout (0.5 s) passed
        assert r.headers["Stream-Next-Offset"] == made["next_offset"]
        assert r.headers["Cache-Control"] == "no-store"
    assert time.monotonic() - started >= 0.4

    async def later() -> None:
        await asyncio.sleep(0.2)
        await append(http, api, name, 3)

    waiter = asyncio.ensure_future(later())
    async with http.get(url, params={"mode": "long-poll", "after": made["next_offset"]}) as r:
        assert [m["data"] for m in (await r.json())["messages"]] == [3]
    await waiter
    async with http.post(stream_url(api, name, "append"), data=b"", headers={"Stream-Closed": "true"}) as r:
        final = (await r.json())["next_offset"]
    started = time.monotonic()
    async with http.get(url, params={"mode": "long-poll", "after": final}) as r:
        assert r.status == 200
        assert await r.json() == {
            "messages": [],
            "next_offset": final,
            "up_to_date": True,
            "closed": True,
            "encoding": "json",
        }
    assert time.monotonic() - started < 0.4  # closed: no waiting
    async with http.get(url, params={"mode": "stream"}) as r:
        assert r.status == 400


@pytest.fixture(scope="module")
def short_sse_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    data: Path = tmp_path_factory.mktemp("short-sse") / "data"
    with OriginProcess(data, "--sse-max-age", "1", "--sse-keepalive", "0.3") as process:
        yield process


async def test_sse_ends_at_max_age(http: aiohttp.ClientSession, short_sse_origin: OriginProcess, name: str) -> None:
    api = short_sse_origin.url + "/streams/api/v1"
    await create(http, api, name)
    await append(http, api, name, 1)
    started = time.monotonic()
    async with http.get(stream_url(api, name, "tail")) as r:
        reader = SSEReader(r)
        event = await reader.next()
        assert event is not None and event.data == "1"
        assert await reader.next(timeout=5) is None
    assert 0.8 < time.monotonic() - started < 4
