"""Small REST helpers for tests: create, append, read, and an SSE reader with a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from plugin_streams.shared import sse


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


class SSEReader:
    """Events of one SSE response, read with a deadline; comments are counted too."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.parser = sse.Parser()
        self.pending: list[sse.Event] = []
        self.raw = b""
        self.ended = False

    async def next(self, timeout: float = 10.0) -> sse.Event | None:
        """The next event, or None when the response ended."""
        async with asyncio.timeout(timeout):
            while not self.pending:
                chunk = await self.response.content.readany()
                if not chunk:
                    self.ended = True
                    return None
                self.raw += chunk
                self.pending += self.parser.feed(chunk)
        return self.pending.pop(0)

    async def take(self, count: int, timeout: float = 10.0) -> list[sse.Event]:
        events = []
        while len(events) < count:
            event = await self.next(timeout)
            assert event is not None, f"stream ended after {events}"
            events.append(event)
        return events
