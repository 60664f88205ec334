"""The synchronous client: the async client run on a private event-loop thread.

Every method blocks until the async call finishes on that thread. `read` returns an iterator
that fetches pages as it goes; `tail` calls its callback on a worker thread, one message at a
time and in order (so the callback may itself use this client), and returns a handle with
`stop()` and `wait()`. Close the client (or use it as a context manager) to end the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from plugin_streams.client import Streams
from plugin_streams.models import Message, Retention, StreamInfo
from plugin_streams.stream import Stream
from plugin_streams.tail import RetryHook, TailHandle

if TYPE_CHECKING:
    from plugin_streams._kv_sync import SyncKv

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="plugin-streams-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("the sync client cannot be called from its own event-loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_the_rest() -> None:
            # Tails still running end here rather than being destroyed with the loop.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _iterate(loop: _LoopThread, agen: AsyncIterator[T]) -> Iterator[T]:
    async def step() -> tuple[bool, T | None]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    async def close() -> None:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            await aclose()

    try:
        while True:
            more, item = loop.run(step())
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        loop.run(close())


class SyncTailHandle:
    def __init__(self, loop: _LoopThread, handle: TailHandle) -> None:
        self._loop = loop
        self._handle = handle
        self._done: Future[None] = loop.submit(self._wait())

    async def _wait(self) -> None:
        await self._handle.done

    @property
    def offset(self) -> str | None:
        return self._handle.offset

    @property
    def closed(self) -> bool:
        return self._handle.closed

    @property
    def done(self) -> bool:
        return self._done.done()

    def stop(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._handle.stop)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the tail ends (closure, stop() or an error, which is raised here)."""
        self._done.result(timeout)


class SyncStream:
    def __init__(self, loop: _LoopThread, stream: Stream) -> None:
        self._loop = loop
        self._stream = stream
        self.name = stream.name

    @property
    def producer_id(self) -> str:
        return self._stream.producer_id

    def info(self) -> StreamInfo:
        return self._loop.run(self._stream.info())

    def append(self, value: Any) -> str | None:
        return self._loop.run(self._stream.append(value))

    def append_batch(self, values: Iterable[Any]) -> list[str | None]:
        return self._loop.run(self._stream.append_batch(values))

    def close(self) -> str:
        return self._loop.run(self._stream.close())

    def read(self, after: str | None = None, *, limit: int | None = None) -> Iterator[Message]:
        return _iterate(self._loop, self._stream.read(after, limit=limit))

    def tail(
        self,
        after: str | Callable[[Message], None] | None = None,
        callback: Callable[[Message], None] | None = None,
        *,
        mode: str = "sse",
        on_retry: RetryHook | None = None,
        give_up_after: float | None = None,
    ) -> SyncTailHandle:
        """As Stream.tail; `on_retry` runs on the client's event-loop thread (keep it quick)."""
        if callback is None and callable(after):
            after, callback = None, after
        if callback is None:
            raise TypeError("tail() needs a callback")
        assert after is None or isinstance(after, str)
        user_callback = callback

        async def deliver(message: Message) -> None:
            await asyncio.to_thread(user_callback, message)

        async def start() -> TailHandle:
            return self._stream.tail(after, deliver, mode=mode, on_retry=on_retry, give_up_after=give_up_after)

        return SyncTailHandle(self._loop, self._loop.run(start()))


class SyncStreams:
    """The blocking `Streams`: the same arguments (`api=` included), the same API choice."""

    def __init__(self, url: str | Sequence[str], token: str | None = None, **options: Any) -> None:
        self._streams = Streams(url, token, **options)  # first: a bad URL or api= starts no thread
        self._loop = _LoopThread()

    @property
    def api_name(self) -> str:
        return self._streams.api_name

    def __enter__(self) -> SyncStreams:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            self._loop.run(self._streams.close())
            self._loop.close()

    def stream(self, name: str, *, producer_id: str | None = None, epoch: int | None = None) -> SyncStream:
        return SyncStream(self._loop, self._streams.stream(name, producer_id=producer_id, epoch=epoch))

    def create(
        self,
        name: str,
        content_type: str = "application/json",
        *,
        retention: Retention | dict[str, int | None] | None = None,
        max_size: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: str | None = None,
        producer_id: str | None = None,
    ) -> SyncStream:
        stream = self._loop.run(
            self._streams.create(
                name,
                content_type,
                retention=retention,
                max_size=max_size,
                ttl_seconds=ttl_seconds,
                expires_at=expires_at,
                producer_id=producer_id,
            )
        )
        return SyncStream(self._loop, stream)

    def get(self, name: str) -> StreamInfo:
        return self._loop.run(self._streams.get(name))

    def delete(self, name: str) -> None:
        self._loop.run(self._streams.delete(name))

    def exists(self, name: str) -> bool:
        return self._loop.run(self._streams.exists(name))

    def list(self, prefix: str = "", *, page_size: int | None = None) -> Iterator[StreamInfo]:
        return _iterate(self._loop, self._streams.list(prefix, page_size=page_size))

    def kv(self, db: str) -> SyncKv:
        """The blocking KV store `db` (see `plugin_streams.kv` and `plugin_streams._kv_sync`)."""
        # Imported here: _kv_sync builds on this module's loop thread and iterators.
        from plugin_streams._kv_sync import SyncKv

        return SyncKv(self._loop, self._streams.kv(db))
