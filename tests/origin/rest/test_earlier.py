"""origin.rest.earlier: `read?before=` pages walk back over exactly the messages forward reads give."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from plugin_streams.shared.auth import policy_from_mapping
from tests.support.credentials import bearer
from tests.support.memory_origin import Client, MemoryClient

API = "/streams/api/v1/streams"


async def make_stream(client: Client, name: str, content_type: str, appends: list[bytes]) -> None:
    r = await client.post(API, json={"name": name, "content_type": content_type})
    assert r.status == 201, await r.text()
    for body in appends:
        r = await client.post(f"{API}/{name}/append", data=body)
        assert r.status == 200, await r.text()


async def forward(client: Client, name: str) -> list[dict[str, Any]]:
    """Every message, read forwards page by page (the reference the backward walk must match)."""
    out: list[dict[str, Any]] = []
    after = "-1"
    while True:
        r = await client.get(f"{API}/{name}/read", params={"after": after, "limit": "7"})
        page = await r.json()
        out += page["messages"]
        after = page["next_offset"]
        if page["up_to_date"]:
            return out


async def backward(client: Client, name: str, limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every message walked back from the tail in pages of `limit`, the pages' bodies)."""
    pages: list[dict[str, Any]] = []
    before = "now"
    while True:
        r = await client.get(f"{API}/{name}/read", params={"before": before, "limit": str(limit)})
        assert r.status == 200, await r.text()
        page = await r.json()
        assert r.headers["Stream-Start-Offset"] == page["start_offset"]
        assert r.headers["Stream-Next-Offset"] == page["next_offset"]
        pages.append(page)
        if not page["has_earlier"]:
            break
        assert page["messages"], "a page with earlier messages before it is never empty"
        before = page["start_offset"]
    messages = [m for page in reversed(pages) for m in page["messages"]]
    return messages, pages


def json_appends() -> list[bytes]:
    """Single values and batches of several sizes: a JSON record may hold many messages."""
    appends, n = [], 0
    for size in (1, 5, 1, 1, 12, 3, 1, 30, 2, 1):
        batch = [{"n": n + i, "pad": "x" * (n % 13)} for i in range(size)]
        appends.append(json.dumps(batch if size > 1 else batch[0]).encode())
        n += size
    return appends


@pytest.mark.parametrize("limit", [1, 4, 10, 1000])
@pytest.mark.parametrize("chunk_size", [64, 65536])
async def test_json_pages_walk_back_with_no_gap_or_duplicate(
    memory_client: MemoryClient, limit: int, chunk_size: int
) -> None:
    client = await memory_client(chunk_size=chunk_size)
    await make_stream(client, "j", "application/json", json_appends())
    expected = await forward(client, "j")
    assert [m["data"]["n"] for m in expected] == list(range(57))
    messages, pages = await backward(client, "j", limit)
    assert messages == expected
    for later, earlier in itertools.pairwise(pages):
        assert earlier["next_offset"] == later["start_offset"]  # the seam: no gap, no overlap
    assert all(len(p["messages"]) <= limit for p in pages)
    if chunk_size == 65536:
        assert all(len(p["messages"]) == limit for p in pages[:-1])  # only a chunk's bytes can shorten one
    assert pages[0]["next_offset"] == expected[-1]["offset"] and pages[0]["up_to_date"] is True


@pytest.mark.parametrize("limit", [1, 3, 1000])
async def test_text_pages_walk_back_one_message_per_append(memory_client: MemoryClient, limit: int) -> None:
    client = await memory_client(chunk_size=40)
    await make_stream(client, "t", "text/plain", [f"line {i}\n".encode() * (1 + i % 4) for i in range(11)])
    expected = await forward(client, "t")
    assert len(expected) == 11
    messages, _ = await backward(client, "t", limit)
    assert messages == expected


async def test_before_an_offset_pages_end_there(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await make_stream(client, "j", "application/json", json_appends())
    expected = await forward(client, "j")
    r = await client.get(f"{API}/j/read", params={"before": expected[20]["offset"], "limit": "5"})
    page = await r.json()
    assert page["messages"] == expected[16:21]
    assert page["start_offset"] == expected[15]["offset"] and page["has_earlier"] is True
    assert page["up_to_date"] is False and page["closed"] is False
    assert "immutable" in r.headers["Cache-Control"]  # messages before an offset never change
    links = r.headers["Link"]
    assert f"before={expected[15]['offset']}" in links and 'rel="prev"' in links
    assert f"after={expected[20]['offset']}" in links and 'rel="next"' in links
    etag = r.headers["ETag"]
    again = await client.get(
        f"{API}/j/read", params={"before": expected[20]["offset"], "limit": "5"}, headers={"If-None-Match": etag}
    )
    assert again.status == 304
    at_tail = await client.get(f"{API}/j/read", params={"before": "now", "limit": "5"})
    assert "immutable" not in at_tail.headers["Cache-Control"]
    assert at_tail.headers["Stream-Up-To-Date"] == "true"


async def test_before_the_start_is_an_empty_page(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await make_stream(client, "e", "application/json", [])
    for before in ("now", "-1"):
        page = await (await client.get(f"{API}/e/read", params={"before": before})).json()
        assert page["messages"] == [] and page["has_earlier"] is False
        assert page["start_offset"] == page["next_offset"]


async def test_raw_pages_carry_the_bytes_and_their_start(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await make_stream(client, "j", "application/json", [b"[1,2,3]", b"4"])
    r = await client.get(f"{API}/j/read", params={"before": "now", "limit": "2", "format": "raw"})
    assert await r.read() == b"[3,4]"
    expected = await forward(client, "j")
    assert r.headers["Stream-Start-Offset"] == expected[1]["offset"]
    assert r.headers["Content-Type"] == "application/json"


async def test_offsets_inside_a_message_are_400(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await make_stream(client, "j", "application/json", [b'[{"a":1},{"b":2}]'])
    await make_stream(client, "t", "text/plain", [b"hello", b"world"])
    for name in ("j", "t"):
        last = (await forward(client, name))[-1]["offset"]
        generation, position = last.split("_")
        inside = f"{generation}_{int(position) - 2:016d}"
        r = await client.get(f"{API}/{name}/read", params={"before": inside})
        assert r.status == 400, name
        assert "message offset" in (await r.json())["error"]["message"]


@pytest.mark.parametrize(
    "params", [{"before": "now", "after": "-1"}, {"before": "soon"}, {"before": "now", "limit": "0"}]
)
async def test_bad_parameters_are_400(memory_client: MemoryClient, params: dict[str, str]) -> None:
    client = await memory_client()
    await make_stream(client, "j", "application/json", [b"1"])
    r = await client.get(f"{API}/j/read", params=params)
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "bad_request"


async def test_a_fork_walks_back_into_its_source(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await make_stream(client, "src", "application/json", [b"[1,2,3]", b"4"])
    headers = {"Stream-Forked-From": "/v1/stream/src", "Content-Type": "application/json"}
    assert (await client.put("/v1/stream/fork", headers=headers)).status == 201
    assert (await client.post(f"{API}/fork/append", data=b"[5,6]")).status == 200
    expected = await forward(client, "fork")
    assert [m["data"] for m in expected] == [1, 2, 3, 4, 5, 6]
    messages, _ = await backward(client, "fork", 2)
    assert messages == expected


async def test_reading_backwards_needs_the_read_right(memory_client: MemoryClient) -> None:
    policy = policy_from_mapping({"token": [{"name": "admin", "token": "root", "admin": [""]}]})
    client = await memory_client(policy)
    r = await client.post(API, json={"name": "p"}, headers=bearer("root"))
    assert r.status == 201
    assert (await client.get(f"{API}/p/read", params={"before": "now"})).status == 401
    assert (await client.get(f"{API}/p/read", params={"before": "now"}, headers=bearer("root"))).status == 200


async def test_the_walk_stops_where_retention_dropped_data(memory_client: MemoryClient) -> None:
    client = await memory_client(compact_min_bytes=1)
    r = await client.post(API, json={"name": "r", "content_type": "text/plain", "retention": {"max_bytes": 250}})
    assert r.status == 201
    for i in range(10):
        assert (await client.post(f"{API}/r/append", data=f"{i}".encode() * 100)).status == 200
    kept = await forward(client, "r")
    assert [m["data"][0] for m in kept] == ["8", "9"]  # whole appends only, never more than 250 bytes
    messages, pages = await backward(client, "r", 1)
    assert messages == kept
    assert pages[-1]["has_earlier"] is False  # nothing before the retained data is offered
