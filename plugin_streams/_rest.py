"""This project's REST API (`/streams/api/v1/streams`) behind the client's `Api` seam.

Stream resources are JSON; a read is a page `{messages: [{offset, data}], next_offset,
up_to_date}`, so every message has its own offset. Producer errors come as JSON codes
(`stale_epoch` with the server's epoch, `sequence_gap` when the server forgot the producer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from plugin_streams._api import Appended, CreateOptions, EpochFenced, Producer, ProducerForgotten, TailSession
from plugin_streams._rest_tail import RestTail
from plugin_streams.models import Message, StreamInfo, decode_data

if TYPE_CHECKING:
    from plugin_streams._transport import Response, Transport

NAME: Final = "rest"


def stream_path(name: str) -> str:
    # Slashes escaped too: a name ending in /read or /tail stays unambiguous.
    return "/streams/" + quote(name, safe="")


def _json_error(response: Response) -> dict[str, Any]:
    if not response.body.startswith(b"{"):
        return {}
    error = response.json().get("error")
    return error if isinstance(error, dict) else {}


class RestApi:
    name: Final = NAME

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def path(self, name: str) -> str:
        return stream_path(name)

    async def create(self, name: str, options: CreateOptions) -> StreamInfo:
        body: dict[str, Any] = {"name": name, "content_type": options.content_type}
        if options.retention is not None:
            body["retention"] = options.retention.to_json()
        for key in ("max_size", "ttl_seconds", "expires_at"):
            value = getattr(options, key)
            if value is not None:
                body[key] = value
        response = await self.transport.request(
            "POST", "/streams", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        response.raise_for_status()
        return StreamInfo.from_json(response.json())

    async def describe(self, name: str) -> StreamInfo:
        response = await self.transport.request("GET", stream_path(name))
        response.raise_for_status()
        return StreamInfo.from_json(response.json())

    async def delete(self, name: str) -> None:
        response = await self.transport.request("DELETE", stream_path(name))
        if response.status == 404 and response.attempts > 1:
            return  # a retried delete: an attempt that failed in flight did it
        response.raise_for_status()

    async def list(self, prefix: str, page_size: int | None) -> AsyncIterator[StreamInfo]:
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

    async def append(
        self, name: str, body: bytes, content_type: str | None, producer: Producer, *, close: bool
    ) -> Appended:
        headers = producer.headers()
        if content_type is not None:
            headers["Content-Type"] = content_type
        if close:
            headers["Stream-Closed"] = "true"
        response = await self.transport.request("POST", stream_path(name) + "/append", headers=headers, data=body)
        error = _json_error(response) if response.status in (403, 409) else {}
        if response.status == 403 and error.get("code") == "stale_epoch":
            if isinstance(error.get("producer_epoch"), int):
                raise EpochFenced(error["producer_epoch"])
        if response.status == 409 and error.get("code") == "sequence_gap":
            raise ProducerForgotten
        response.raise_for_status()
        result = response.json()
        offsets = result.get("offsets")
        return Appended(
            list(offsets) if offsets is not None else None, result.get("next_offset"), duplicate=offsets is None
        )

    async def read(self, name: str, after: str | None, limit: int | None) -> AsyncIterator[Message]:
        position = after
        while True:
            params = {"limit": str(limit)} if limit else {}
            if position is not None:
                params["after"] = position
            response = await self.transport.request("GET", stream_path(name) + "/read", params=params)
            response.raise_for_status()
            page = response.json()
            encoding = page.get("encoding", "json")
            for item in page["messages"]:
                yield Message(item["offset"], decode_data(item["data"], encoding))
            if page["up_to_date"] or page["next_offset"] == position:
                return
            position = page["next_offset"]

    def tail_session(self, name: str, mode: str, idle_timeout: float) -> TailSession:
        return RestTail(self.transport, stream_path(name) + "/tail", mode, idle_timeout)
