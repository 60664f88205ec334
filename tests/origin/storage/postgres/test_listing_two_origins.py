"""Listings on two origins sharing one database: each lists every stream, whichever origin made it.

The REST API's list (`/streams/api/v1/streams?prefix=`) and the replication API's stream list and
change feed are answered from the database, not from the streams one origin happens to hold in
memory: streams created through A are listed by B, in name order, page after page, and B's change
feed tells of them (one feed for every origin, under one epoch).
"""

from __future__ import annotations

import json

import aiohttp
import pytest

from plugin_streams.shared import replication as r
from tests.support.two_origins import TwoOrigins

pytestmark = pytest.mark.timeout(60)

NAMES = [f"list/{i:03d}" for i in range(25)]


async def test_b_lists_and_announces_the_streams_created_through_a(two_origins: TwoOrigins) -> None:
    a, b = two_origins.a.url, two_origins.b.url
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{b}{r.CHANGES_PATH}", params={"heartbeat": "0.1"}) as feed:
            hello = json.loads(await feed.content.readline())
            for name in NAMES:
                async with session.put(f"{a}/v1/stream/{name}", data=b"x") as response:
                    assert response.status == 201
            announced = []
            while len(announced) < len(NAMES):
                event = json.loads(await feed.content.readline())
                if event["type"] == r.CREATED:
                    announced.append(event["stream"]["config"]["path"])
        assert announced == NAMES
        listed: list[str] = []
        cursor = None
        while True:
            params = {"prefix": "list/", "limit": "10"} | ({"cursor": cursor} if cursor else {})
            async with session.get(f"{b}/streams/api/v1/streams", params=params) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            listed += [stream["name"] for stream in page["streams"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert listed == NAMES
        async with session.get(f"{b}{r.STREAMS_PATH}") as response:
            replicated = [s["config"]["path"] for s in (await response.json())["streams"]]
        assert [path for path in replicated if path.startswith("list/")] == NAMES
        async with session.get(f"{a}{r.CHANGES_PATH}", params={"heartbeat": "0.1"}) as feed:
            assert json.loads(await feed.content.readline())["epoch"] == hello["epoch"]
