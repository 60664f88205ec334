"""Small REST helpers for tests: create, append, read (SSE: tests.support.sse_reader)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp


def stream_url(api: str, name: str, action: str = "") -> str:
    return f"{api}/streams/{quote(name, safe='')}" + (f"/{action}" if action else "")


async def create(http: aiohttp.ClientSession, api: str, name: str, **fields: Any) -> dict[str, Any]:
    async with http.post(api + "/streams", json={"name": name, **fields}) as r:
        assert r.status == 201, await r.text()
        return dict(await r.json())


async def append(
    http: aiohttp.ClientSession, api: str, name: str, body: Any, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(stream_url(api, name, "append"), data=data, headers=dict(headers or {})) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def read(http: aiohttp.ClientSession, api: str, name: str, **params: str) -> dict[str, Any]:
    async with http.get(stream_url(api, name, "read"), params=params) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def read_all(http: aiohttp.ClientSession, api: str, name: str, **params: str) -> list[dict[str, Any]]:
    """Every message, following next_offset page by page."""
    messages: list[dict[str, Any]] = []
    while True:
        page = await read(http, api, name, **params)
        messages += page["messages"]
        if page["up_to_date"]:
            return messages
        params["after"] = page["next_offset"]
