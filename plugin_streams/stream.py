"""One stream: appends with automatic idempotent-producer headers, paged reads, live tails.

Appends of one handle are sent one at a time with (Producer-Id, Producer-Epoch, Producer-Seq);
a failed attempt is repeated with the same three values, so the server stores it at most once
(PROTOCOL.md §5.2.1). The id is random per handle unless given. A handle whose id is given
starts at an epoch taken from the clock, so a restarted producer always opens a newer epoch
than its previous run (starting again at 0 would make the server take its first appends for
duplicates of the old run's and drop them); if the server knows a newer epoch (403), the handle
claims the one after it and starts its sequence again at 0.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from plugin_streams.errors import StreamClosed, StreamsError
from plugin_streams.models import Message, StreamInfo, decode_data, is_json_type
from plugin_streams.tail import Callback, TailHandle

if TYPE_CHECKING:
    from plugin_streams._transport import Response, Transport

#: Epoch changes one append may go through (stale epoch, lost producer state) before failing.
MAX_EPOCH_CLAIMS: Final = 5


def stream_path(name: str) -> str:
    # Slashes escaped too: a name ending in /read or /tail stays unambiguous.
    return "/streams/" + quote(name, safe="")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class Stream:
    def __init__(
        self,
        transport: Transport,
        name: str,
        *,
        producer_id: str | None = None,
        epoch: int | None = None,
        info: StreamInfo | None = None,
    ) -> None:
        self.name = name
        self.path = stream_path(name)
        self.producer_id = producer_id or f"py-{uuid.uuid4().hex}"
        if epoch is None:
            epoch = 0 if producer_id is None else time.time_ns() // 1_000_000
        self.epoch = epoch
        self.seq = 0
        self._transport = transport
        self._content_type = info.content_type if info is not None else None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"

    async def info(self) -> StreamInfo:
        response = await self._transport.request("GET", self.path)
        response.raise_for_status()
        info = StreamInfo.from_json(response.json())
        self._content_type = info.content_type
        return info

    async def content_type(self) -> str:
        if self._content_type is None:
            await self.info()
        assert self._content_type is not None
        return self._content_type

    # -- appends ----------------------------------------------------------------------------

    async def append(self, value: Any) -> str | None:
        """Append one message; returns its offset.

        None only when a retry found the append already stored by an earlier attempt and the
        server no longer remembers where (it restarted in between): the message is stored once.
        """
        content_type = await self.content_type()
        if is_json_type(content_type):
            offsets = await self._post(_json([value]), content_type)
        else:
            offsets = await self._post(_raw(value), content_type)
        return offsets[0] if offsets else None

    async def append_batch(self, values: Iterable[Any]) -> list[str | None]:
        """Append several messages; JSON streams store them in one atomic append.

        The server takes at most 10,000 messages in one JSON append (PayloadTooLarge beyond), since
        its answer lists every message's offset: send bigger sets as several batches.
        """
        items = list(values)
        if not items:
            return []
        content_type = await self.content_type()
        if is_json_type(content_type):
            offsets = await self._post(_json(items), content_type)
            return list(offsets) if offsets else [None] * len(items)
        return [await self.append(item) for item in items]

    async def close(self) -> str:
        """Close the stream (no appends after this); returns its final offset. Idempotent."""
        try:
            body = await self._send(b"", None, closed=True)
        except StreamClosed as exc:
            return str(exc.details["next_offset"])
        return str(body["next_offset"])

    async def _post(self, body: bytes, content_type: str) -> list[str] | None:
        result = await self._send(body, content_type)
        offsets = result.get("offsets")
        return list(offsets) if offsets is not None else None

    async def _send(self, body: bytes, content_type: str | None, *, closed: bool = False) -> dict[str, Any]:
        async with self._lock:
            for _ in range(MAX_EPOCH_CLAIMS):
                headers = {
                    "Producer-Id": self.producer_id,
                    "Producer-Epoch": str(self.epoch),
                    "Producer-Seq": str(self.seq),
                }
                if content_type is not None:
                    headers["Content-Type"] = content_type
                if closed:
                    headers["Stream-Closed"] = "true"
                response = await self._transport.request("POST", self.path + "/append", headers=headers, data=body)
                if self._claim_epoch(response):
                    continue
                response.raise_for_status()
                self.seq += 1
                result: dict[str, Any] = response.json()
                return result
            raise StreamsError("the producer epoch kept changing; is another client using this producer id?")

    def _claim_epoch(self, response: Response) -> bool:
        """Open a new epoch (seq 0) when the server fenced this one or forgot this producer."""
        if response.status == 403:
            error = response.json().get("error", {}) if response.body.startswith(b"{") else {}
            if error.get("code") == "stale_epoch" and isinstance(error.get("producer_epoch"), int):
                self.epoch = error["producer_epoch"] + 1
                self.seq = 0
                return True
        if response.status == 409 and response.body.startswith(b"{"):
            # A sequence gap: the server no longer knows this producer (the stream was re-created).
            if response.json().get("error", {}).get("code") == "sequence_gap":
                self.epoch += 1
                self.seq = 0
                return True
        return False

    # -- reads ------------------------------------------------------------------------------

    async def read(self, after: str | None = None, *, limit: int | None = None) -> AsyncIterator[Message]:
        """Every message after `after` (the start if None) up to the tail as of the last page."""
        position = after
        while True:
            params = {"limit": str(limit)} if limit else {}
            if position is not None:
                params["after"] = position
            response = await self._transport.request("GET", self.path + "/read", params=params)
            response.raise_for_status()
            page = response.json()
            encoding = page.get("encoding", "json")
            for item in page["messages"]:
                yield Message(item["offset"], decode_data(item["data"], encoding))
            if page["up_to_date"] or page["next_offset"] == position:
                return
            position = page["next_offset"]

    def tail(
        self,
        after: str | Callback | None = None,
        callback: Callback | None = None,
        *,
        mode: str = "sse",
        idle_timeout: float = 45.0,
    ) -> TailHandle:
        """Deliver every message after `after` to `callback`, live, until stop() or closure.

        `callback(message)` may be a function or a coroutine function; messages arrive in order,
        each exactly once, across reconnects. Also accepted: `tail(callback)`.
        """
        if callback is None and callable(after):
            after, callback = None, after
        if callback is None:
            raise TypeError("tail() needs a callback")
        assert after is None or isinstance(after, str)
        return TailHandle(self._transport, self.path, after, callback, mode=mode, idle_timeout=idle_timeout)


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"this stream takes bytes or str, not {type(value).__name__}")
