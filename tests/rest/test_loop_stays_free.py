"""No single REST request holds the origin's event loop: /healthz answers while it runs.

Each test runs, against a real origin, one request that used to cost seconds of CPU on its loop
(a listing of names the caller cannot read, a `read?limit=1` inside a batch of a million
messages, a batch append of millions) and polls /healthz meanwhile (tests.support.healthz_watch).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.rest.helpers import create, read, stream_url
from tests.support.big_batch import BIG_BATCH, at, big_stream, value
from tests.support.credentials import bearer
from tests.support.healthz_watch import MAX_STALL, timed
from tests.support.processes import OriginProcess

POLICY = """
public_read = ["open/"]

[[token]]
name = "admin"
token = "root"
admin = [""]
"""
ADMIN = bearer("root")
HIDDEN = 10_000  # names an anonymous caller may not read (the old listing was quadratic in them)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    root: Path = tmp_path_factory.mktemp("loop-free")
    (root / "policy.toml").write_text(POLICY)
    flags = ("--engine", "memory", "--auth-config", str(root / "policy.toml"), "--rate-limit", "0")
    with OriginProcess(root / "data", *flags) as process:
        yield process


@pytest.fixture(scope="module")
def big_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path_factory.mktemp("big") / "data", "--fsync", "never") as process:
        yield process


async def _create_many(http: aiohttp.ClientSession, api: str, names: list[str]) -> None:
    queue = list(reversed(names))

    async def worker() -> None:
        while queue:
            name = queue.pop()
            async with http.post(api + "/streams", json={"name": name}, headers=ADMIN) as r:
                assert r.status == 201, await r.text()

    await asyncio.gather(*(worker() for _ in range(16)))


async def test_a_listing_page_costs_the_same_however_many_names_are_hidden(secured: OriginProcess) -> None:
    api = secured.url + "/streams/api/v1"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await _create_many(http, api, [f"hidden/{i:05d}" for i in range(HIDDEN)] + ["open/last"])
        # Anonymous: none of the hidden names is readable; the page must still come back quickly.
        request = http.get(api + "/streams", params={"prefix": "", "limit": "1"})
        status, body, took, stall = await timed(secured.url, request)
        print(f"listing over {HIDDEN} hidden names: {took:.3f} s, /healthz waited {stall:.3f} s")
        assert status == 200, body
        assert stall < MAX_STALL and took < MAX_STALL
        # Following the cursor reaches the one readable stream, page by bounded page.
        seen: list[str] = []
        params = {"limit": "1"}
        pages = 0
        while True:
            async with http.get(api + "/streams", params=params) as r:
                assert r.status == 200
                page = await r.json()
            pages += 1
            seen += [s["name"] for s in page["streams"]]
            if page["next_cursor"] is None:
                break
            assert 'rel="next"' in r.headers["Link"]
            params = {"limit": "1", "cursor": page["next_cursor"]}
        assert seen == ["open/last"] and pages > 1
        # With a token that reads everything, pages are full and in name order.
        async with http.get(api + "/streams", params={"prefix": "hidden/", "limit": "3"}, headers=ADMIN) as r:
            page = await r.json()
        assert [s["name"] for s in page["streams"]] == ["hidden/00000", "hidden/00001", "hidden/00002"]
        params = {"prefix": "hidden/", "limit": "3", "cursor": page["next_cursor"]}
        async with http.get(api + "/streams", params=params, headers=ADMIN) as r:
            page = await r.json()
        assert [s["name"] for s in page["streams"]] == ["hidden/00003", "hidden/00004", "hidden/00005"]


async def test_rest_reads_of_one_message_inside_a_huge_batch_stay_cheap(big_origin: OriginProcess) -> None:
    api = big_origin.url + "/streams/api/v1"
    name = "loop-free/rest-read"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        _, generation = await big_stream(http, big_origin.url, name)
        worst = 0.0
        for k in (BIG_BATCH // 4, BIG_BATCH // 2, BIG_BATCH - 3):
            after = at(generation, k)
            request = http.get(stream_url(api, name, "read"), params={"after": after, "limit": "1"})
            status, body, took, stall = await timed(big_origin.url, request)
            print(f"REST read?limit=1 at message {k}: {took:.3f} s, /healthz waited {stall:.3f} s")
            assert status == 200, body[:200]
            page = json.loads(body)
            assert [m["data"] for m in page["messages"]] == [value(k)]
            assert page["next_offset"] == at(generation, k + 1)
            worst = max(worst, stall)
        assert worst < MAX_STALL


async def test_rest_append_answers_are_bounded(big_origin: OriginProcess) -> None:
    api = big_origin.url + "/streams/api/v1"
    name = "loop-free/rest-append"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await create(http, api, name)
        huge = b"[" + b",".join(b"%d" % (i % 10) for i in range(3 * BIG_BATCH)) + b"]"
        request = http.post(stream_url(api, name, "append"), data=io.BytesIO(huge))
        status, body, took, stall = await timed(big_origin.url, request)
        print(f"REST append of {3 * BIG_BATCH} messages: {status}, {len(body)} B, {took:.3f} s, stall {stall:.3f} s")
        assert status == 413, body[:200]
        assert json.loads(body)["error"]["code"] == "payload_too_large" and len(body) < 1000
        assert stall < MAX_STALL
        page = await read(http, api, name)
        assert page["messages"] == []  # refused whole: nothing of it was stored
        # The most a REST append takes: every offset listed, and the answer stays small.
        most = list(range(10_000))
        async with http.post(stream_url(api, name, "append"), data=json.dumps(most).encode()) as r:
            assert r.status == 200
            made = await r.json()
        assert len(made["offsets"]) == len(most) and made["offsets"][-1] == made["next_offset"]
        async with http.post(stream_url(api, name, "append"), data=json.dumps([*most, 1]).encode()) as r:
            assert r.status == 413


@pytest.mark.parametrize("limit", ["9" * 5000, "\u00b2", "1" * 7, "-1", "0", " 1", "1.0"])
async def test_a_numeric_query_parameter_out_of_range_is_a_400(big_origin: OriginProcess, limit: str) -> None:
    api = big_origin.url + "/streams/api/v1"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(api + "/streams", json={"name": "loop-free/limits"}) as r:
            assert r.status in (200, 201)
        for url in (api + "/streams", stream_url(api, "loop-free/limits", "read")):
            async with http.get(url, params={"limit": limit}) as r:
                assert r.status == 400, (url, r.status)
                error = (await r.json())["error"]
                assert error["code"] == "bad_request" and "limit" in error["message"]
        params = {"limit": limit, "mode": "long-poll"}
        async with http.get(stream_url(api, "loop-free/limits", "tail"), params=params) as r:
            assert r.status == 400
