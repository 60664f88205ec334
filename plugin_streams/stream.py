"""One stream: appends with automatic idempotent-producer headers, paged reads, live tails.

Appends of one handle are sent one at a time with (Producer-Id, Producer-Epoch, Producer-Seq);
a failed attempt is repeated with the same three values, so the server stores it at most once
(PROTOCOL.md §5.2.1). The id is random per handle unless given. A handle whose id is given
starts at an epoch taken from the clock, so a restarted producer always opens a newer epoch
than its previous run (starting again at 0 would make the server take its first appends for
duplicates of the old run's and drop them); if the server knows a newer epoch (403), the handle
claims the one after it and starts its sequence again at 0.

A handle behaves the same whichever API its client speaks (`plugin_streams.client`); where the
two differ (the offsets of a JSON append or read in protocol mode), the methods say so.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from plugin_streams._api import Appended, EpochFenced, Producer, ProducerForgotten
from plugin_streams.errors import StreamClosed, StreamsError
from plugin_streams.models import Message, StreamInfo, is_json_type
from plugin_streams.tail import Callback, RetryHook, TailHandle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plugin_streams._api import Api

#: Epoch changes one append may go through (stale epoch, lost producer state) before failing.
MAX_EPOCH_CLAIMS: Final = 5


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _offsets(appended: Appended, count: int) -> list[str | None]:
    """The offset after each of `count` appended messages, None where the server gave none."""
    if appended.offsets is not None:
        return list(appended.offsets)
    if appended.duplicate or appended.next_offset is None:
        return [None] * count
    # The protocol gives only the offset after the whole append: the last message's.
    return [None] * (count - 1) + [appended.next_offset]


class Stream:
    def __init__(
        self,
        api: Api,
        name: str,
        *,
        producer_id: str | None = None,
        epoch: int | None = None,
        info: StreamInfo | None = None,
    ) -> None:
        self.name = name
        self.path = api.path(name)
        self.producer_id = producer_id or f"py-{uuid.uuid4().hex}"
        if epoch is None:
            epoch = 0 if producer_id is None else time.time_ns() // 1_000_000
        self.epoch = epoch
        self.seq = 0
        self._api = api
        self._content_type = info.content_type if info is not None else None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"

    async def info(self) -> StreamInfo:
        info = await self._api.describe(self.name)
        self._content_type = info.content_type
        return info

    async def content_type(self) -> str:
        if self._content_type is None:
            await self.info()
        assert self._content_type is not None
        return self._content_type

    # -- appends ----------------------------------------------------------------------------

    async def append(self, value: Any) -> str | None:
        """Append one message; returns the offset after it.

        None only when a retry found the append already stored by an earlier attempt and the
        server no longer remembers where (it restarted in between, or it speaks the protocol,
        which does not say): the message is stored once.
        """
        content_type = await self.content_type()
        body = _json([value]) if is_json_type(content_type) else _raw(value)
        return _offsets(await self._send(body, content_type), 1)[0]

    async def append_batch(self, values: Iterable[Any]) -> list[str | None]:
        """Append several messages; JSON streams store them in one atomic append.

        REST: every message's offset (the server takes at most 10,000 messages in one JSON
        append, PayloadTooLarge beyond, since its answer lists them all: send bigger sets as
        several batches). Protocol: the offset after the last message, None for the others.
        """
        items = list(values)
        if not items:
            return []
        content_type = await self.content_type()
        if is_json_type(content_type):
            return _offsets(await self._send(_json(items), content_type), len(items))
        return [await self.append(item) for item in items]

    async def close(self) -> str:
        """Close the stream (no appends after this); returns its final offset. Idempotent."""
        try:
            appended = await self._send(b"", None, close=True)
        except StreamClosed as exc:
            return str(exc.details["next_offset"])
        return str(appended.next_offset)

    async def _send(self, body: bytes, content_type: str | None, *, close: bool = False) -> Appended:
        async with self._lock:
            for _ in range(MAX_EPOCH_CLAIMS):
                producer = Producer(self.producer_id, self.epoch, self.seq)
                try:
                    appended = await self._api.append(self.name, body, content_type, producer, close=close)
                except EpochFenced as fenced:
                    # The server fenced this epoch: claim the one after its newest, seq 0.
                    self.epoch, self.seq = fenced.epoch + 1, 0
                    continue
                except ProducerForgotten:
                    # A sequence gap: the server no longer knows this producer (the stream was re-created).
                    self.epoch, self.seq = self.epoch + 1, 0
                    continue
                self.seq += 1
                return appended
            raise StreamsError("the producer epoch kept changing; is another client using this producer id?")

    # -- reads ------------------------------------------------------------------------------

    def read(self, after: str | None = None, *, limit: int | None = None) -> AsyncIterator[Message]:
        """Every message after `after` (the start if None) up to the tail as of the last page.

        `limit` is the REST API's page size; a protocol server chooses its own response size.
        """
        return self._api.read(self.name, after, limit)

    def tail(
        self,
        after: str | Callback | None = None,
        callback: Callback | None = None,
        *,
        mode: str = "sse",
        idle_timeout: float = 45.0,
        on_retry: RetryHook | None = None,
        give_up_after: float | None = None,
    ) -> TailHandle:
        """Deliver every message after `after` to `callback`, live, until stop() or closure.

        `callback(message)` may be a function or a coroutine function; messages arrive in order,
        each exactly once, across reconnects. Also accepted: `tail(callback)`. `after="now"`
        starts at the tail. `on_retry(error, delay)` is called before each reconnect wait after
        a failure; `give_up_after` seconds of failures in a row end the tail with the last error
        (None: retry forever).
        """
        if callback is None and callable(after):
            after, callback = None, after
        if callback is None:
            raise TypeError("tail() needs a callback")
        assert after is None or isinstance(after, str)
        return TailHandle(
            self._api,
            self.name,
            after,
            callback,
            mode=mode,
            idle_timeout=idle_timeout,
            on_retry=on_retry,
            give_up_after=give_up_after,
        )


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"this stream takes bytes or str, not {type(value).__name__}")
