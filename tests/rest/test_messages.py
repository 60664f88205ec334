"""REST append and read against a real origin with 1 KiB chunks: offsets, pages, caching, errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from tests.rest.helpers import append, create, read, read_all, stream_url


def producer(pid: str, epoch: int, seq: int) -> dict[str, str]:
    return {"Producer-Id": pid, "Producer-Epoch": str(epoch), "Producer-Seq": str(seq)}


async def test_append_one_and_a_batch_returns_each_offset(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    one = await append(http, api, name, {"n": 0})
    assert len(one["offsets"]) == 1 and one["next_offset"] == one["offsets"][0]
    assert one["duplicate"] is False and one["closed"] is False
    batch = await append(http, api, name, [{"n": 1}, [2, 3], "four", None])
    assert len(batch["offsets"]) == 4
    assert batch["offsets"] == sorted(batch["offsets"]) and batch["offsets"][0] > one["next_offset"]
    messages = (await read(http, api, name))["messages"]
    assert [m["data"] for m in messages] == [{"n": 0}, {"n": 1}, [2, 3], "four", None]
    assert [m["offset"] for m in messages] == one["offsets"] + batch["offsets"]
    # after=<offset of a message> resumes right after it, also inside a batch append.
    for i, message in enumerate(messages):
        rest = (await read(http, api, name, after=message["offset"]))["messages"]
        assert rest == messages[i + 1 :]


async def test_read_page_shape_and_empty_stream(http: aiohttp.ClientSession, api: str, name: str) -> None:
    made = await create(http, api, name)
    async with http.get(stream_url(api, name, "read")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        page = await r.json()
        assert "Link" not in r.headers
    assert page == {
        "messages": [],
        "next_offset": made["next_offset"],
        "up_to_date": True,
        "closed": False,
        "encoding": "json",
    }
    page = await read(http, api, name, after="now")
    assert page["messages"] == [] and page["up_to_date"] is True


async def test_pagination_across_chunk_boundaries(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    values = [{"i": i, "pad": "x" * 90} for i in range(120)]  # ~12 KiB: a dozen 1 KiB chunks
    offsets: list[str] = []
    for start in range(0, 120, 7):
        offsets += (await append(http, api, name, values[start : start + 7]))["offsets"]
    pages = []
    params: dict[str, str] = {}
    while True:
        async with http.get(stream_url(api, name, "read"), params=params) as r:
            page = await r.json()
            pages.append(page)
            if page["up_to_date"]:
                assert "Link" not in r.headers
                break
            link = r.headers["Link"]
            assert link.endswith('rel="next"') and f"after={page['next_offset']}" in link
            params = {"after": page["next_offset"]}
    assert len(pages) > 8  # chunks of 1 KiB
    got = [m for p in pages for m in p["messages"]]
    assert [m["data"] for m in got] == values
    assert [m["offset"] for m in got] == offsets
    for page in pages:
        assert page["next_offset"] == page["messages"][-1]["offset"]
    # With a limit, pages are cut at `limit` messages, and still resume exactly.
    limited = await read_all(http, api, name, limit="5")
    assert [m["data"] for m in limited] == values
    async with http.get(stream_url(api, name, "read"), params={"limit": "5"}) as r:
        assert len((await r.json())["messages"]) == 5
        assert "limit=5" in r.headers["Link"]


async def test_a_page_before_the_tail_is_immutable(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    offsets = []
    for i in range(12):  # separate appends: records, so that reads stop at chunk boundaries
        offsets += (await append(http, api, name, {"i": i, "pad": "y" * 200}))["offsets"]
    after = offsets[0]
    async with http.get(stream_url(api, name, "read"), params={"after": after, "limit": "2"}) as r:
        assert "immutable" in r.headers["Cache-Control"]
        etag = r.headers["ETag"]
    async with http.get(stream_url(api, name, "read"), params={"after": after}) as r:
        page = await r.json()
        assert page["up_to_date"] is False  # stopped at a chunk boundary
        assert "immutable" in r.headers["Cache-Control"]
    async with http.get(stream_url(api, name, "read"), params={"after": offsets[-2]}) as r:
        assert (await r.json())["up_to_date"] is True
        assert "immutable" not in r.headers["Cache-Control"] and "max-age=1" in r.headers["Cache-Control"]
    async with http.get(stream_url(api, name, "read")) as r:  # no explicit offset: never immutable
        assert "immutable" not in r.headers["Cache-Control"]
    headers = {"If-None-Match": etag}
    async with http.get(stream_url(api, name, "read"), params={"after": after, "limit": "2"}, headers=headers) as r:
        assert r.status == 304


async def test_raw_reads(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [1, {"b": 2}, "c"])
    async with http.get(stream_url(api, name, "read"), headers={"Accept": "application/octet-stream"}) as r:
        assert r.status == 200
        assert await r.read() == b'[1,{"b":2},"c"]'
        assert r.headers["Stream-Next-Offset"] == made["next_offset"]
        assert r.headers["Stream-Up-To-Date"] == "true"
        assert r.headers["Stream-Start-Offset"]
    params = {"format": "raw", "after": made["offsets"][0], "limit": "1"}
    async with http.get(stream_url(api, name, "read"), params=params) as r:
        assert await r.read() == b'[{"b":2}]'
        assert r.headers["Stream-Start-Offset"] == made["offsets"][0]
        assert r.headers["Stream-Next-Offset"] == made["offsets"][1]
        assert "format=raw" in r.headers["Link"]
    async with http.get(stream_url(api, name, "read"), params={"format": "xml"}) as r:
        assert r.status == 400


async def test_text_and_binary_streams(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name + "-t", content_type="text/plain")
    a = await append(http, api, name + "-t", b"line one\nline two")
    b = await append(http, api, name + "-t", "h\u00e9llo".encode())
    page = await read(http, api, name + "-t")
    assert page["encoding"] == "text"
    assert page["messages"] == [
        {"offset": a["offsets"][0], "data": "line one\nline two"},
        {"offset": b["offsets"][0], "data": "h\u00e9llo"},
    ]
    await create(http, api, name + "-b", content_type="application/octet-stream")
    blobs = [bytes(range(256)), b"\x00", b"[1,2]"]
    offsets = [(await append(http, api, name + "-b", blob))["offsets"][0] for blob in blobs]
    page = await read(http, api, name + "-b", limit="2")
    assert page["encoding"] == "base64"
    assert [base64.b64decode(m["data"]) for m in page["messages"]] == blobs[:2]
    assert [m["offset"] for m in page["messages"]] == offsets[:2]
    rest = await read(http, api, name + "-b", after=page["next_offset"])
    assert [base64.b64decode(m["data"]) for m in rest["messages"]] == blobs[2:]
    async with http.get(stream_url(api, name + "-b", "read"), params={"format": "raw"}) as r:
        assert await r.read() == b"".join(blobs)
        assert r.headers["Content-Type"] == "application/octet-stream"


async def test_bad_offsets(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    made = await append(http, api, name, {"a": "bc"})
    generation, position = made["next_offset"].split("_")
    inside = f"{generation}_{int(position) - 2:016d}"  # inside the message: not a boundary
    for after in ("nonsense", "", inside, f"{generation}_{int(position) + 100:016d}"):
        async with http.get(stream_url(api, name, "read"), params={"after": after}) as r:
            assert r.status == 400, after
            assert (await r.json())["error"]["code"] == "bad_request"
    for limit in ("0", "-1", "x", "100000"):
        async with http.get(stream_url(api, name, "read"), params={"limit": limit}) as r:
            assert r.status == 400, limit


async def test_an_offset_of_an_earlier_incarnation_is_410(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    old = await append(http, api, name, [1, 2])
    async with http.delete(stream_url(api, name)) as r:
        assert r.status == 204
    await create(http, api, name)
    async with http.get(stream_url(api, name, "read"), params={"after": old["offsets"][0]}) as r:
        assert r.status == 410
        assert (await r.json())["error"]["code"] == "gone"


async def test_append_errors(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name, max_size=64)
    url = stream_url(api, name, "append")
    for body in (b"", b"{bad", b"[]"):
        async with http.post(url, data=body) as r:
            assert r.status == 400, body
    async with http.post(url, data=json.dumps("x" * 100).encode()) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "payload_too_large"
    async with http.post(url, data=b"1", headers={"Producer-Id": "p"}) as r:
        assert r.status == 400  # producer headers come together
    async with http.post(url, data=b"", headers={"Stream-Closed": "true"}) as r:
        assert r.status == 200
        closed = await r.json()
        assert closed["closed"] is True and closed["offsets"] == []
    async with http.post(url, data=b"1") as r:
        assert r.status == 409
        error = (await r.json())["error"]
        assert error["code"] == "stream_closed"
        assert error["next_offset"] == closed["next_offset"]
    async with http.get(stream_url(api, name, "read")) as r:
        assert (await r.json())["closed"] is True


async def test_producer_retries_never_duplicate(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    first = await append(http, api, name, [1, 2], producer("p", 0, 0))
    again = await append(http, api, name, [1, 2], producer("p", 0, 0))
    assert again["duplicate"] is True
    assert again["offsets"] == first["offsets"]  # remembered by this origin process
    second = await append(http, api, name, 3, producer("p", 0, 1))
    assert second["duplicate"] is False
    async with http.post(stream_url(api, name, "append"), data=b"4", headers=producer("p", 0, 5)) as r:
        assert r.status == 409
        error = (await r.json())["error"]
        assert (error["code"], error["expected_seq"], error["received_seq"]) == ("sequence_gap", 2, 5)
    await append(http, api, name, 4, producer("p", 1, 0))  # a new epoch
    async with http.post(stream_url(api, name, "append"), data=b"5", headers=producer("p", 0, 2)) as r:
        assert r.status == 403
        error = (await r.json())["error"]
        assert (error["code"], error["producer_epoch"]) == ("stale_epoch", 1)
        assert r.headers["Producer-Epoch"] == "1"
    assert [m["data"] for m in (await read(http, api, name))["messages"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_rest_appends_are_visible_to_protocol_reads(
    http: aiohttp.ClientSession, api: str, rest_origin: Any, name: str, content_type: str
) -> None:
    await create(http, api, name, content_type=content_type)
    body = b'"x"' if content_type == "application/json" else b"x"
    made = await append(http, api, name, body)
    async with http.head(rest_origin.stream_url + name) as r:
        assert r.headers["Stream-Next-Offset"] == made["next_offset"]


async def test_link_keeps_the_escaped_name(http: aiohttp.ClientSession, api: str, rest_origin: Any, name: str) -> None:
    odd = name + "/odd name?#%"
    await create(http, api, odd)
    await append(http, api, odd, [1, 2, 3])
    async with http.get(stream_url(api, odd, "read"), params={"limit": "1"}) as r:
        link = r.headers["Link"]
    assert "odd%20name%3F%23%25" in link
    async with http.get(rest_origin.url + link[1 : link.index(">")]) as r:
        assert [m["data"] for m in (await r.json())["messages"]] == [2]  # the link keeps limit=1
