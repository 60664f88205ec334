"""CDN-facing behaviour: chunk boundaries, Cache-Control per response kind, cursors, surrogate keys."""

from __future__ import annotations

import pytest

from tests.support.memory_origin import Client, MemoryClient, S

CHUNK = 100


@pytest.fixture
async def client(memory_client: MemoryClient) -> Client:
    return await memory_client(chunk_size=CHUNK, long_poll_timeout=0.2)


async def fill(client: Client, path: str, sizes: list[int]) -> list[str]:
    r = await client.put(S + path, headers={"Content-Type": "application/octet-stream"})
    offsets = [r.headers["Stream-Next-Offset"]]
    for i, size in enumerate(sizes):
        r = await client.post(S + path, headers={"Content-Type": "application/octet-stream"}, data=bytes([i]) * size)
        assert r.status == 204
        offsets.append(r.headers["Stream-Next-Offset"])
    return offsets


async def test_reads_stop_at_deterministic_boundaries(client: Client) -> None:
    offsets = await fill(client, "s", [40, 40, 40, 250, 10])
    # From the start: 40 + 40 fit below 100, the third append would cross it.
    r = await client.get(S + "s", params={"offset": offsets[0]})
    assert len(await r.read()) == 80
    assert r.headers["Stream-Next-Offset"] == offsets[2]
    assert "Stream-Up-To-Date" not in r.headers
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # A single append larger than the chunk comes whole.
    r = await client.get(S + "s", params={"offset": offsets[3]})
    assert len(await r.read()) == 250
    # Every reader walking from any offset requests the same sequence of URLs.
    walks = []
    for start in (offsets[0], offsets[1]):
        walk, offset = [], start
        while True:
            r = await client.get(S + "s", params={"offset": offset})
            walk.append(offset)
            if "Stream-Up-To-Date" in r.headers:
                break
            offset = r.headers["Stream-Next-Offset"]
        walks.append(walk)
    assert walks[0][1:] == walks[1][1:]  # they meet at the first boundary and walk together


async def test_cache_control_by_response_kind(client: Client) -> None:
    offsets = await fill(client, "s", [40, 40, 40])
    tail = offsets[-1]
    r = await client.get(S + "s", params={"offset": offsets[2]})  # reaches the tail
    assert r.headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=1"
    assert r.headers["Stream-Up-To-Date"] == "true"
    r = await client.get(S + "s", params={"offset": "-1"})  # offset=-1 can change
    assert r.headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=1"
    r = await client.get(S + "s", params={"offset": "now"})
    assert r.headers["Cache-Control"] == "no-store" and "ETag" not in r.headers
    assert (await client.head(S + "s")).headers["Cache-Control"] == "no-store"
    r = await client.get(S + "s", params={"offset": tail, "live": "long-poll"})
    assert r.status == 204 and r.headers["Cache-Control"] == "no-store"
    r = await client.get(S + "s", params={"offset": offsets[2], "live": "long-poll"})
    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=20"
    r = await client.get(S + "missing")
    assert r.headers["Cache-Control"] == "no-store"
    async with client.get(S + "s", params={"offset": tail, "live": "sse"}) as r:
        assert r.headers["Cache-Control"] == "no-cache"


async def test_surrogate_keys_name_the_stream(client: Client) -> None:
    await fill(client, "rooms/a b", [1])
    r = await client.get(S + "rooms/a b", params={"offset": "-1"})
    assert r.headers["Surrogate-Key"] == "ds/rooms/a%20b" == r.headers["Cache-Tag"]


async def test_cursors_are_deterministic_and_monotonic(
    memory_client: MemoryClient,
) -> None:
    # A frozen clock: the cursor interval must not tick over in the middle of the test.
    client = await memory_client(chunk_size=CHUNK, long_poll_timeout=0.2, clock_ms=lambda: 1_800_000_000_000)
    offsets = await fill(client, "s", [5])
    tail = offsets[-1]

    async def cursor(echo: str | None) -> str:
        params = {"offset": tail, "live": "long-poll"} | ({"cursor": echo} if echo else {})
        r = await client.get(S + "s", params=params)
        assert r.status == 204
        return r.headers["Stream-Cursor"]

    first = await cursor(None)
    ahead = await cursor(first)
    assert int(ahead) > int(first)
    assert await cursor(first) == ahead  # identical requests share a cache key
    far = str(int(first) + 1000)
    assert int(await cursor(far)) > int(far)
    assert await cursor("1") == first  # an old cursor gets the current interval


async def test_query_order_and_unknown_parameters_do_not_matter(client: Client) -> None:
    offsets = await fill(client, "s", [5, 5])
    a = await client.get(f"{S}s?offset={offsets[1]}&x=1&live=long-poll&cursor=5")
    b = await client.get(f"{S}s?cursor=5&live=long-poll&zzz=2&offset={offsets[1]}")
    assert a.status == b.status == 200
    assert await a.read() == await b.read()
    for header in ("Stream-Next-Offset", "Stream-Cursor", "ETag", "Cache-Control"):
        assert a.headers[header] == b.headers[header]


async def test_etag_changes_on_close_and_304(client: Client) -> None:
    offsets = await fill(client, "s", [5])
    r = await client.get(S + "s", params={"offset": offsets[0]})
    etag = r.headers["ETag"]
    r = await client.get(S + "s", params={"offset": offsets[0]}, headers={"If-None-Match": f"W/{etag}"})
    assert r.status == 304 and await r.read() == b""
    await client.post(S + "s", headers={"Stream-Closed": "true"})
    r = await client.get(S + "s", params={"offset": offsets[0]}, headers={"If-None-Match": etag})
    assert r.status == 200 and r.headers["ETag"] != etag and r.headers["Stream-Closed"] == "true"


async def test_recreated_stream_never_serves_old_offsets(client: Client) -> None:
    old = await fill(client, "s", [5, 5])
    assert (await client.delete(S + "s")).status == 204
    new = await fill(client, "s", [7, 7])
    assert not set(old) & set(new)
    r = await client.get(S + "s", params={"offset": old[1]})
    assert r.status == 410


def shifted(offset: str, by: int) -> str:
    generation, position = offset.split("_")
    return f"{generation}_{int(position) + by:016d}"


async def test_byte_streams_read_from_any_byte_to_the_same_boundary(client: Client) -> None:
    offsets = await fill(client, "s", [40, 40, 40])
    whole = await client.get(S + "s", params={"offset": offsets[0]})
    inside = await client.get(S + "s", params={"offset": shifted(offsets[0], 15)})
    assert inside.status == 200
    assert await inside.read() == (await whole.read())[15:]
    assert inside.headers["Stream-Next-Offset"] == whole.headers["Stream-Next-Offset"] == offsets[2]
    assert inside.headers["Cache-Control"] == whole.headers["Cache-Control"]


async def test_json_streams_read_only_from_message_boundaries(client: Client) -> None:
    r = await client.put(S + "j", headers={"Content-Type": "application/json"}, data=b'[{"a":",]"},{"b":2}]')
    assert r.status == 201
    tail = r.headers["Stream-Next-Offset"]
    first = shifted(tail, -len(b'{"a":",]"},{"b":2},'))
    assert await (await client.get(S + "j", params={"offset": first})).json() == [{"a": ",]"}, {"b": 2}]
    # Inside one append, every message boundary is a valid start; nothing else is.
    second = shifted(first, len(b'{"a":",]"},'))
    assert await (await client.get(S + "j", params={"offset": second})).json() == [{"b": 2}]
    for inside in (3, 6, 7):
        assert (await client.get(S + "j", params={"offset": shifted(first, inside)})).status == 400


async def test_long_poll_cache_control_follows_the_offset_kind(client: Client) -> None:
    offsets = await fill(client, "lp", [40, 40, 40])
    explicit = await client.get(S + "lp", params={"offset": offsets[0], "live": "long-poll"})
    assert explicit.headers["Cache-Control"] == "public, max-age=31536000, immutable"  # a complete chunk
    start = await client.get(S + "lp", params={"offset": "-1", "live": "long-poll"})
    assert start.headers["Cache-Control"] == "public, max-age=1, stale-while-revalidate=1"  # -1 can change


async def test_cached_copies_never_outlive_the_stream(client: Client) -> None:
    r = await client.put(S + "ttl", headers={"Content-Type": "application/octet-stream", "Stream-TTL": "30"})
    for i in range(3):
        await client.post(S + "ttl", headers={"Content-Type": "application/octet-stream"}, data=bytes([i]) * 40)
    r = await client.get(S + "ttl", params={"offset": r.headers["Stream-Next-Offset"]})
    assert r.headers["Cache-Control"] == "public, max-age=30, immutable"
    deleted = await client.delete(S + "ttl")
    assert deleted.headers["Surrogate-Key"] == "ds/ttl"  # what a CDN should purge
