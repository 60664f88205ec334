"""Real processes: the edge passes `__ds` to the origin untouched and never answers it from cache."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import EdgeProcess, OriginProcess

pytestmark = pytest.mark.timeout(120)
DS = "/v1/stream/__ds/subscriptions/"


async def test_subscriptions_through_an_edge(tmp_path: Path) -> None:
    origin = OriginProcess(tmp_path / "data").start()
    edge = EdgeProcess(origin.url, tmp_path).start()
    try:
        async with aiohttp.ClientSession(edge.url) as http:
            await http.put("/v1/stream/wake/w", data=b"[]", headers={"Content-Type": "application/json"})
            config = {"type": "pull-wake", "pattern": "jobs/*", "wake_stream": "wake/w", "lease_ttl_ms": 1000}
            async with http.put(DS + "p", json=config) as created:
                assert created.status == 201
            async with http.get(DS + "p") as described:
                assert (await described.json())["streams"] == []
            await http.put("/v1/stream/jobs/1", data=b'{"n":1}', headers={"Content-Type": "application/json"})
            async with http.get(DS + "p") as described:  # the same URL again: not a cached copy
                assert [s["path"] for s in (await described.json())["streams"]] == ["jobs/1"]
            async with http.post(DS + "p/claim", json={"worker": "w1"}) as claim:
                assert claim.status == 200
                claimed = await claim.json()
            async with http.post(DS + "p/claim", json={"worker": "w2"}) as busy:
                assert busy.status == 409 and (await busy.json())["error"]["current_holder"] == "w1"
            release = {"wake_id": claimed["wake_id"], "generation": claimed["generation"]}
            auth = {"Authorization": f"Bearer {claimed['token']}"}
            async with http.post(DS + "p/release", json=release, headers=auth) as released:
                assert released.status == 204
            async with http.delete(DS + "p") as deleted:
                assert deleted.status == 204
            async with http.get(DS + "p") as gone:
                assert gone.status == 404
    finally:
        assert edge.stop() == 0
        assert origin.stop() == 0
