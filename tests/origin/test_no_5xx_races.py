"""No 5xx from a race or a bad request: concurrent creates, and the replication API's input.

Real origin processes. The creates cross the file engine's generation-block boundaries (1024
generations reserved at a time) with 64 requests in flight, where concurrent reservations once
wrote the same temporary file and a share of them failed with 503.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.origin.storage.file.engine import GENERATION_BLOCK
from tests.support.credentials import bearer
from tests.support.processes import OriginProcess

pytestmark = pytest.mark.timeout(180)

POLICY = """
public_read = ["public/"]

[[token]]
name = "replica"
token = "replica-secret"
read = [""]

[[token]]
name = "writer"
token = "writer-secret"
write = [""]

[[token]]
name = "reader"
token = "reader-secret"
read = ["app/"]
"""


async def test_concurrent_creates_across_generation_blocks_never_fail(tmp_path: Path) -> None:
    creates, in_flight = 2 * GENERATION_BLOCK + 200, 64
    with OriginProcess(tmp_path / "data", "--fsync", "never") as origin:
        statuses: Counter[int] = Counter()
        reasons: list[str] = []
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(creates):
            queue.put_nowait(i)
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    async with session.put(origin.stream_url + f"s{i}", headers={"Content-Type": "text/plain"}) as r:
                        statuses[r.status] += 1
                        if r.status != 201:
                            reasons.append(await r.text())

            await asyncio.gather(*(worker() for _ in range(in_flight)))
        assert statuses == Counter({201: creates}), (statuses, reasons[:3])


async def test_replication_api_needs_read_on_every_path(tmp_path: Path) -> None:
    """The README: the replication API needs `read = [""]`; a per-path reader or an anonymous
    client of a public path gets nothing from any route, and is refused before its body is read."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with OriginProcess(tmp_path / "data", "--auth-config", str(policy)) as origin:
        base = origin.url + "/v1/replication/"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            for path in ("app/a", "public/p"):
                async with session.put(
                    origin.stream_url + path,
                    data=b"x",
                    headers={**bearer("writer-secret"), "Content-Type": "text/plain"},
                ) as r:
                    assert r.status == 201, await r.text()
            refused: list[tuple[str, str, int]] = []
            for who, headers in (("reader", bearer("reader-secret")), ("anonymous", {})):
                for method, route, body in (
                    ("GET", "streams", None),
                    ("GET", "streams/app/a", None),
                    ("GET", "streams/public/p", None),
                    ("GET", "log/app/a?from=0", None),
                    ("GET", "log/public/p?from=0", None),
                    ("POST", "touch", b'{"paths": ["app/a"]}'),
                    ("POST", "touch", b'{"paths": ["public/p"]}'),
                    ("POST", "touch", b"[" * 100_000),  # refused before the body is parsed
                ):
                    data = io.BytesIO(body) if body else None
                    async with session.request(method, base + route, data=data, headers=headers) as r:
                        if r.status not in (401, 403):
                            refused.append((who, route, r.status))
            assert refused == []
            async with session.get(base + "streams", headers=bearer("replica-secret")) as r:
                assert r.status == 200, await r.text()


async def test_replication_api_bad_input_is_4xx(tmp_path: Path) -> None:
    with OriginProcess(tmp_path / "data") as origin:
        base = origin.url + "/v1/replication/"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.put(origin.stream_url + "s", data=b"x", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 201
            bodies = [
                b"[" * 100_000,  # 100k-deep JSON
                b'{"paths": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                b'{"paths": [1]}',
                b'{"paths": "s"}',
                b"\xff\xfe",
                b"",
            ]
            seen = []
            for body in bodies:
                async with session.post(base + "touch", data=io.BytesIO(body)) as r:
                    text = await r.text()
                    seen.append(r.status)
                    assert r.status == 400 and 0 < len(text) < 300 and "Traceback" not in text, (r.status, text)
            async with session.post(base + "touch", data=io.BytesIO(b" " * (11 * 1024 * 1024))) as r:
                assert r.status == 413, r.status
            for query in ("generation=%C2%B2", "generation=" + "9" * 5000, "generation=-1", "generation=1.5"):
                for route in ("streams/s", "log/s"):
                    async with session.get(f"{base}{route}?{query}") as r:
                        text = await r.text()
                        assert r.status == 400 and "Traceback" not in text, (route, query, r.status, text)
            async with session.post(base + "touch", data=b'{"paths": ["s", "missing"]}') as r:
                assert r.status == 204
