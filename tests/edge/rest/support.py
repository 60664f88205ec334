"""Helpers for REST-through-the-edge tests: URLs, appends, and what the edge asked the origin."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.edge.support import metric, scrape

API = "/streams/api/v1/streams"
REST_KINDS = ("rest_read", "rest_long_poll", "rest_sse")


def url(base: str, name: str, action: str = "") -> str:
    return f"{base}{API}/{quote(name, safe='')}" + (f"/{action}" if action else "")


async def create(http: aiohttp.ClientSession, base: str, name: str, content_type: str = "application/json") -> None:
    async with http.post(base + API, json={"name": name, "content_type": content_type}) as r:
        assert r.status == 201, (r.status, await r.text())


async def append(http: aiohttp.ClientSession, base: str, name: str, body: Any, **headers: str) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(url(base, name, "append"), data=data, headers=headers) as r:
        assert r.status == 200, (r.status, await r.text())
        answer: dict[str, Any] = await r.json()
        return answer


async def upstream(http: aiohttp.ClientSession, edge_url: str, *kinds: str) -> float:
    """Requests the edge sent the origin, of the given kinds (every REST kind by default)."""
    text = await scrape(http, edge_url)
    return sum(metric(text, "ds_edge_upstream_requests_total", kind=kind) for kind in kinds or REST_KINDS)
