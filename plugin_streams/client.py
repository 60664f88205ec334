"""Streams: the async client's entry point (create, describe, list, delete, stream handles).

    async with Streams("http://127.0.0.1:4437", token="...") as streams:
        stream = await streams.create("user-events")
        offset = await stream.append({"user": 1})
        async for message in stream.read(after=saved):
            ...

`url` may be a list (or a comma-separated string) of servers, such as several edges: requests
move to the next one when one fails. Every request is retried for `retry_for` seconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

from plugin_streams._transport import Transport
from plugin_streams.errors import NotFound
from plugin_streams.models import Retention, StreamInfo
from plugin_streams.stream import Stream, stream_path


class Streams:
    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None = None,
        *,
        retry_for: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.transport = Transport(
            url, token, retry_for=retry_for, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    async def __aenter__(self) -> Streams:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the HTTP connections (streams themselves are untouched)."""
        await self.transport.close()

    def stream(self, name: str, *, producer_id: str | None = None, epoch: int | None = None) -> Stream:
        """A handle on stream `name` (no request is made)."""
        return Stream(self.transport, name, producer_id=producer_id, epoch=epoch)

    async def create(
        self,
        name: str,
        content_type: str = "application/json",
        *,
        retention: Retention | dict[str, int | None] | None = None,
        max_size: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: str | None = None,
        producer_id: str | None = None,
    ) -> Stream:
        """Create `name`, or confirm it exists with these settings; raises Conflict otherwise."""
        body: dict[str, Any] = {"name": name, "content_type": content_type}
        if retention is not None:
            body["retention"] = retention.to_json() if isinstance(retention, Retention) else dict(retention)
        for key, value in (("max_size", max_size), ("ttl_seconds", ttl_seconds), ("expires_at", expires_at)):
            if value is not None:
                body[key] = value
        response = await self.transport.request(
            "POST", "/streams", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        response.raise_for_status()
        info = StreamInfo.from_json(response.json())
        return Stream(self.transport, name, producer_id=producer_id, info=info)

    async def get(self, name: str) -> StreamInfo:
        """The description of `name`; raises NotFound."""
        response = await self.transport.request("GET", stream_path(name))
        response.raise_for_status()
        return StreamInfo.from_json(response.json())

    async def delete(self, name: str) -> None:
        """Delete `name`; raises NotFound (unless an earlier attempt of this call deleted it)."""
        response = await self.transport.request("DELETE", stream_path(name))
        if response.status == 404 and response.attempts > 1:
            return  # a retried delete: an attempt that failed in flight did it
        response.raise_for_status()

    async def list(self, prefix: str = "", *, page_size: int | None = None) -> AsyncIterator[StreamInfo]:
        """Every stream whose name starts with `prefix`, in name order, paging automatically."""
        cursor: str | None = None
        while True:
            params = {"prefix": prefix}
            if page_size:
                params["limit"] = str(page_size)
            if cursor:
                params["cursor"] = cursor
            response = await self.transport.request("GET", "/streams", params=params)
            response.raise_for_status()
            page = response.json()
            for item in page["streams"]:
                yield StreamInfo.from_json(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def exists(self, name: str) -> bool:
        try:
            await self.get(name)
        except NotFound:
            return False
        return True
