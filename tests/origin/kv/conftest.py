"""Fixtures for the KV/queue HTTP contract suite (tests/origin/kv/test_api_*.py): one real origin per
module, an HTTP session, and `KvApi`, a thin speaker of the wire contract (README, "KV store"),
deliberately independent of the product's client (plugin_streams/kv*.py) so that the suite judges
the server, not a client that might share its mistakes.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp
import pytest

from tests.support.processes import OriginProcess

KV = "/kv/api/v1"
Key = list[Any]
#: `body=` default: send no body (None is a JSON value a test may send).
NO_BODY: Any = object()


class KvApi:
    """One database of a running origin, spoken to over HTTP exactly as the contract says."""

    def __init__(self, http: aiohttp.ClientSession, url: str, db: str) -> None:
        self.http = http
        self.url = url
        self.db = db

    @property
    def base(self) -> str:
        return f"{self.url}{KV}/{self.db}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = NO_BODY,
        data: bytes | None = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body or None); `path` is relative to the database."""
        raw = json.dumps(body).encode() if body is not NO_BODY else data
        headers = {"Content-Type": "application/json"} if raw is not None else {}
        # Big bodies go as a file-like payload, which aiohttp sends without holding the loop.
        payload = io.BytesIO(raw) if raw is not None and len(raw) > 256 * 1024 else raw
        async with self.http.request(method, f"{self.base}{path}", data=payload, params=params, headers=headers) as r:
            text = await r.read()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        status, answer = await self.call(method, path, **kw)
        assert status in (200, 201), (method, path, status, answer)
        return answer

    # ---- KV --------------------------------------------------------------------------------------

    async def get(self, key: Key) -> dict[str, Any]:
        answer: dict[str, Any] = await self.ok("GET", "/keys", params={"key": json.dumps(key)})
        return answer

    async def value(self, key: Key) -> Any:
        return (await self.get(key))["value"]

    async def set(self, key: Key, value: Any, expire_in: int | None = None) -> dict[str, Any]:
        params = {"key": json.dumps(key)}
        if expire_in is not None:
            params["expireIn"] = str(expire_in)
        answer: dict[str, Any] = await self.ok("PUT", "/keys", body=value, params=params)
        return answer

    async def delete(self, key: Key) -> dict[str, Any]:
        answer: dict[str, Any] = await self.ok("DELETE", "/keys", params={"key": json.dumps(key)})
        return answer

    async def atomic(self, mutations: list[Any], checks: list[Any] | None = None) -> tuple[int, Any]:
        return await self.call("POST", "/atomic", body={"checks": checks or [], "mutations": mutations})

    async def list(self, **query: Any) -> dict[str, Any]:
        params = {k: json.dumps(v) if k in ("prefix", "start", "end") else str(v) for k, v in query.items()}
        answer: dict[str, Any] = await self.ok("GET", "/list", params=params)
        return answer

    async def list_all(self, page: int, **query: Any) -> list[dict[str, Any]]:
        """Every entry of a selection, read `page` at a time through the cursor."""
        entries: list[dict[str, Any]] = []
        cursor = None
        while True:
            extra = {} if cursor is None else {"cursor": cursor}
            answer = await self.list(limit=page, **query, **extra)
            entries += answer["entries"]
            cursor = answer["cursor"]
            if cursor is None:
                return entries

    # ---- the change stream -----------------------------------------------------------------------

    async def events(self, offset: str = "-1") -> list[dict[str, Any]]:
        """Every event of the change stream after `offset` (catch-up, all pages)."""
        found: list[dict[str, Any]] = []
        while True:
            async with self.http.get(f"{self.url}/v1/stream/__kv/{self.db}", params={"offset": offset}) as r:
                if r.status == 404 and not found:
                    return []
                assert r.status == 200, (r.status, await r.text())
                found += json.loads(await r.read())
                offset = r.headers["Stream-Next-Offset"]
                if r.headers.get("Stream-Up-To-Date") == "true":
                    return found

    async def tail(self) -> str | None:
        """The change stream's tail offset (None while the database was never written)."""
        async with self.http.head(f"{self.url}/v1/stream/__kv/{self.db}") as r:
            return r.headers.get("Stream-Next-Offset") if r.status == 200 else None

    # ---- queue -----------------------------------------------------------------------------------

    async def enqueue(self, value: Any, **options: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await self.ok("POST", "/queue/enqueue", body={"value": value, **options})
        return answer

    async def lease(self, group: str, **options: Any) -> list[dict[str, Any]]:
        body = {"worker": "w1", "leaseMs": 1000, **options}
        answer = await self.ok("POST", f"/queue/groups/{group}/lease", body=body)
        messages: list[dict[str, Any]] = answer["messages"]
        return messages

    async def stats(self, group: str) -> dict[str, Any]:
        answer = await self.ok("GET", "/queue/stats")
        found: dict[str, Any] = answer["groups"][group]
        return found


def versionstamp_offset(versionstamp: str) -> str:
    """The change-stream offset a versionstamp names (4 bytes generation, 6 bytes position)."""
    return f"{int(versionstamp[:8], 16):016d}_{int(versionstamp[8:], 16):016d}"


@pytest.fixture(scope="module")
def kv_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path_factory.mktemp("kv") / "data", long_poll_timeout=1.0) as process:
        yield process


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def kv(http: aiohttp.ClientSession, kv_origin: OriginProcess) -> KvApi:
    """A fresh database per test on the module's origin."""
    return KvApi(http, kv_origin.url, f"db-{uuid.uuid4().hex[:12]}")
