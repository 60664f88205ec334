"""A regional replica with real processes: same offsets, restart, replication on read, bad input.

The origin is 50 ms away through the delay proxy (tests/regions/conftest.py).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.edge.support import append, create, metric, scrape, until, wait_metric
from tests.regions.conftest import Regions

TEXT = "text/plain"
TOUCH = "/v1/replication/touch"
pytestmark = pytest.mark.timeout(120)


async def _read_all(session: aiohttp.ClientSession, url: str) -> tuple[bytes, list[tuple[str, str | None]]]:
    """Catch up from the start: the bytes, and each response's (next offset, ETag)."""
    offset, out, pages = "-1", bytearray(), []
    while True:
        async with session.get(url, params={"offset": offset}) as r:
            assert r.status == 200, (r.status, await r.text())
            out += await r.read()
            offset = r.headers["Stream-Next-Offset"]
            pages.append((offset, r.headers.get("ETag")))
            if "Stream-Up-To-Date" in r.headers:
                return bytes(out), pages


async def _local_reads(session: aiohttp.ClientSession, url: str) -> float:
    return metric(await scrape(session, url), "ds_region_local_reads_total", region="eu")


async def test_replica_serves_the_origins_offsets_and_chunks_and_resumes_after_sigkill(regions: Regions) -> None:
    replica = regions.replica("--replicate", "logs/**")
    origin_url = regions.origin.stream_url + "logs/app"
    replica_url = replica.stream_url + "logs/app"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_url, TEXT)
        for i in range(40):  # ~2.5 KiB appends: several 64 KiB chunks in all
            await append(session, origin_url, TEXT, f"{i:04d}".encode() * 600)
        tail = (await _read_all(session, origin_url))[1][-1][0]
        await until(lambda: _holds(session, replica_url, tail), 10, "the replica to copy the stream")
        before = await _local_reads(session, replica.url)
        assert await _read_all(session, replica_url) == await _read_all(session, origin_url)
        assert await _local_reads(session, replica.url) > before  # answered by the replica itself

        replica.kill()
        for i in range(40, 60):  # written while the replica is down
            await append(session, origin_url, TEXT, f"{i:04d}".encode() * 600)
        replica = await asyncio.to_thread(replica.start)  # same flags, same replica directory
        replica_url = replica.stream_url + "logs/app"
        tail = (await _read_all(session, origin_url))[1][-1][0]
        await until(lambda: _holds(session, replica_url, tail), 10, "the restarted replica to catch up")
        origin_copy, replica_copy = await _read_all(session, origin_url), await _read_all(session, replica_url)
        assert replica_copy == origin_copy  # same bytes, same chunk boundaries and ETags: nothing twice
        assert origin_copy[0] == b"".join(f"{i:04d}".encode() * 600 for i in range(60))


async def test_a_stream_read_in_the_region_is_replicated_while_it_is_read(regions: Regions) -> None:
    replica = regions.replica("--replica-idle", "2")  # no --replicate: only what is read here
    origin_url = regions.origin.stream_url + "adhoc"
    replica_url = replica.stream_url + "adhoc"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_url, TEXT, b"first ")
        assert metric(await scrape(session, replica.url), "ds_region_streams_replicated", region="eu") == 0
        async with session.get(replica_url, params={"offset": "-1"}) as r:  # the first read: from the origin
            assert r.status == 200 and await r.read() == b"first "
        await wait_metric(session, replica.url, "ds_region_streams_replicated", 1, 10, region="eu")
        await append(session, origin_url, TEXT, b"second")
        before = await _local_reads(session, replica.url)

        async def replicated_copy_is_current() -> bool:
            async with session.get(replica_url, params={"offset": "-1"}) as r:
                return await r.read() == b"first second"

        await until(replicated_copy_is_current, 10, "the replicated copy to follow the origin")
        assert await _local_reads(session, replica.url) > before
        # Unread for longer than --replica-idle: no longer replicated; reads still work (via the origin).
        await until(lambda: _replicated(session, replica.url, 0), 30, "the idle stream to be dropped")
        async with session.get(replica_url, params={"offset": "-1"}) as r:
            assert r.status == 200 and await r.read() == b"first second"


async def test_writes_through_the_replica_are_read_back_there_at_once(regions: Regions) -> None:
    replica = regions.replica("--replicate", "**")
    url = replica.stream_url + "ryw"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.put(url, headers={"Content-Type": TEXT}) as r:
            assert r.status == 201 and r.headers["Location"] == url  # this region, not the origin
        for i in range(10):
            offset = await append(session, url, TEXT, f"<{i}>".encode())
            async with session.get(url, params={"offset": "-1"}) as r:
                assert r.headers["Stream-Next-Offset"] == offset
                assert (await r.read()).endswith(f"<{i}>".encode())
        async with session.post(url, headers={"Stream-Closed": "true"}) as r:
            assert r.status == 204
        async with session.head(url) as r:
            assert r.headers.get("Stream-Closed") == "true"
        async with session.delete(url) as r:
            assert r.status == 204
        async with session.get(url, params={"offset": "-1"}) as r:
            assert r.status == 404
        assert await _local_reads(session, replica.url) >= 11


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/replication/log/bad?generation=abc", 400),
        ("/v1/replication/log/bad?generation=1&from=-5", 400),
        ("/v1/replication/log/bad?generation=1&from=zz", 400),
        ("/v1/replication/log/missing?generation=99999", 404),
        ("/v1/replication/log/bad?generation=1&heartbeat=0", 400),
        ("/v1/replication/changes?heartbeat=1000", 400),
        ("/v1/replication/changes?after=-1", 400),
        ("/v1/replication/streams?limit=0", 400),
        ("/v1/replication/streams/missing", 404),
        ("/v1/replication/streams/a%01b", 400),
    ],
)
async def test_replication_api_refuses_bad_input_with_4xx(regions: Regions, path: str, status: int) -> None:
    async with aiohttp.ClientSession() as session:
        await create(session, regions.origin.stream_url + "bad", TEXT, b"abc")
        async with session.get(regions.origin.url + path) as r:
            assert r.status == status, (path, r.status, await r.text())


@pytest.mark.parametrize("body", [b"", b"not json", b'{"paths": "x"}', b'{"paths": [1]}', b'{"nope": []}'])
async def test_touch_refuses_bad_bodies(regions: Regions, body: bytes) -> None:
    async with aiohttp.ClientSession() as session, session.post(regions.origin.url + TOUCH, data=body) as r:
        assert r.status == 400, (body, r.status)


async def test_log_feed_refuses_a_position_inside_a_record(regions: Regions) -> None:
    async with aiohttp.ClientSession() as session:
        offset = await create(session, regions.origin.stream_url + "inside", TEXT, b"abcdef")
        generation = int(offset.split("_")[0])
        url = f"{regions.origin.url}/v1/replication/log/inside?generation={generation}&from=3"
        async with session.get(url) as r:
            assert r.status == 400
        async with session.get(url.replace("from=3", "from=7")) as r:
            assert r.status == 400


async def _holds(session: aiohttp.ClientSession, url: str, offset: str) -> bool:
    async with session.head(url) as r:
        return r.status == 200 and r.headers["Stream-Next-Offset"] >= offset


async def _replicated(session: aiohttp.ClientSession, url: str, count: int) -> bool:
    return metric(await scrape(session, url), "ds_region_streams_replicated", region="eu") == count


async def test_a_stream_with_retention_is_copied_from_the_earliest_record_the_origin_keeps(regions: Regions) -> None:
    origin_url = regions.origin.stream_url + "retained"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_url, TEXT, headers={"Stream-Retention-Max-Bytes": "1000"})
        first = ""
        for i in range(30):
            offset = await append(session, origin_url, TEXT, f"{i:03d}".encode() * 100)  # 300-byte appends
            first = first or offset
        async with session.head(origin_url) as r:
            earliest = r.headers["Stream-Earliest-Offset"]
        replica = regions.replica("--replicate", "**")  # starts after the origin dropped the start
        replica_url = replica.stream_url + "retained"
        tail = (await _read_all(session, origin_url))[1][-1][0]
        await until(lambda: _holds(session, replica_url, tail), 10, "the replica to copy the retained part")
        assert await _read_all(session, replica_url) == await _read_all(session, origin_url)
        for url in (origin_url, replica_url):
            async with session.get(url, params={"offset": first}) as r:
                assert r.status == 410 and r.headers["Stream-Earliest-Offset"] == earliest, (url, r.status)
        assert await _local_reads(session, replica.url) > 0


async def test_a_replica_cutting_other_chunks_than_the_origin_sends_reads_to_the_origin(regions: Regions) -> None:
    # The origin cuts 64 KiB chunks (the test default); this replica was told 1 KiB.
    replica = regions.replica("--replicate", "logs/**", "--replica-chunk-size", "1024")
    origin_url = regions.origin.stream_url + "logs/other-chunks"
    replica_url = replica.stream_url + "logs/other-chunks"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await create(session, origin_url, TEXT)
        for i in range(10):
            await append(session, origin_url, TEXT, f"{i:04d}".encode() * 200)
        tail = (await _read_all(session, origin_url))[1][-1][0]
        await wait_metric(session, replica.url, "ds_region_streams_replicated", 1, 10, region="eu")
        before = await _local_reads(session, replica.url)
        assert await _read_all(session, replica_url) == await _read_all(session, origin_url)
        assert (await _read_all(session, replica_url))[1][-1][0] == tail
        assert await _local_reads(session, replica.url) == before  # none answered with its own windows
    assert "is not the origin's --chunk-size 65536" in replica.log_path.read_text()
