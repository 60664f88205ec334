"""A replica of a protected origin: it replicates with its own token and checks readers itself.

The replication API needs `read` on everything. A region that holds the origin's policy answers
reads locally after checking the reader's credentials; one without it never answers reads
itself (it cannot tell who may read what) and passes them to the origin.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import metric, scrape, until
from tests.support.credentials import bearer
from tests.support.delay_proxy import ThreadedDelayProxy

pytestmark = pytest.mark.timeout(90)
POLICY = """
[[token]]
name = "replica"
token = "replica-secret"
read = [""]

[[token]]
name = "app"
token = "app-secret"
write = ["app/"]
"""


async def test_replication_of_a_protected_origin(servers: Servers, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    origin = servers.origin("--auth-config", str(policy), long_poll_timeout=2)
    with ThreadedDelayProxy("127.0.0.1", int(origin.url.rsplit(":", 1)[1]), 0.02) as link:
        common = ("--region", "eu", "--replicate", "**", "--origin-token", "replica-secret")
        checked = servers.edge(
            link.url, *common, "--auth-config", str(policy), "--replica-dir", str(tmp_path / "r1"), long_poll_timeout=2
        )
        unchecked = servers.edge(link.url, *common, "--replica-dir", str(tmp_path / "r2"), long_poll_timeout=2)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.get(origin.url + "/v1/replication/changes") as r:
                assert r.status == 401  # the replication API is not open
            async with session.get(origin.url + "/v1/replication/streams", headers=bearer("app-secret")) as r:
                assert r.status == 403  # nor open to a token without read on everything
            url = "/v1/stream/app/orders"
            async with session.put(
                checked.url + url, data=b"one", headers={**bearer("app-secret"), "Content-Type": "text/plain"}
            ) as r:
                assert r.status == 201, await r.text()

            async def replicated_in(edge_url: str) -> bool:
                return metric(await scrape(session, edge_url), "ds_region_streams_replicated", region="eu") >= 1

            for edge in (checked, unchecked):
                await until(lambda edge=edge: replicated_in(edge.url), 10, "replication with the origin token")
                async with session.get(edge.url + url, params={"offset": "-1"}) as r:
                    assert r.status == 401, f"{edge.url}: an anonymous read got {r.status}"
                async with session.get(edge.url + url, params={"offset": "-1"}, headers=bearer("app-secret")) as r:
                    assert r.status == 200 and await r.read() == b"one"

            checked_reads = metric(await scrape(session, checked.url), "ds_region_local_reads_total", region="eu")
            unchecked_reads = metric(await scrape(session, unchecked.url), "ds_region_local_reads_total", region="eu")
            assert checked_reads >= 1  # checked and answered by the replica
            assert unchecked_reads == 0  # always passed to the origin, which checks

            # The REST API by the same rules: the region with the policy checks and answers itself.
            rest_read = "/streams/api/v1/streams/app%2Forders/read"
            for edge in (checked, unchecked):
                async with session.get(edge.url + rest_read) as r:
                    assert r.status == 401, f"{edge.url}: an anonymous REST read got {r.status}"
                async with session.get(edge.url + rest_read, headers=bearer("app-secret")) as r:
                    assert r.status == 200 and [m["data"] for m in (await r.json())["messages"]] == ["one"]
            after = metric(await scrape(session, checked.url), "ds_region_local_reads_total", region="eu")
            assert after == checked_reads + 2  # both REST reads checked and answered by the replica
            assert metric(await scrape(session, unchecked.url), "ds_region_local_reads_total", region="eu") == 0
