"""`kv.listen_queue(handler)`: workers that lease messages, run the handler, and answer for it.

Each of `concurrency` workers long-polls a lease (`wait_ms`), runs `handler(message)` (a
function or a coroutine function) while a heartbeat extends the lease every `lease_ms / 3`, and
then answers:

- the handler returned: ack. If it returned an `AtomicOperation` (built with `kv.atomic()`),
  that operation is committed in the same record as the ack, so the effect happens exactly
  once however often the message is delivered (the exactly-once processing pattern). If one of
  its checks fails, nothing is committed and the message is nacked (retried after backoff);
- the handler raised `Term(reason)`: the message goes straight to the dead-letter queue;
- the handler raised anything else: nack with the error's text (retried after the message's
  backoff, dead-lettered after its last attempt).

An answer refused as FENCED (the lease expired and the message went to another worker, or the
group was reset) is logged and skipped: the message belongs to whoever holds it now. Failures to
reach the server are logged and retried with backoff; the listener never ends by itself.
`stop()` lets handlers that are running finish and answer, then the listener ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final

from plugin_streams._backoff import Backoff
from plugin_streams._kv_atomic import AtomicBuilder
from plugin_streams._kv_http import Fenced
from plugin_streams._kv_models import QueueMessage
from plugin_streams.errors import StreamsError
from plugin_streams.queue import Queue

log = logging.getLogger("plugin_streams.queue")

Handler = Callable[[QueueMessage], Awaitable[AtomicBuilder | None] | AtomicBuilder | None]
#: How long a worker's lease request waits on the server for a message (at most 30 s).
DEFAULT_WAIT_MS: Final = 5_000
_RUNNING: set[asyncio.Task[None]] = set()


class Term(Exception):
    """Raise from a queue handler to dead-letter the message at once (no further attempts)."""


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return text[:1000]


class QueueListener:
    def __init__(
        self,
        queue: Queue,
        handler: Handler,
        *,
        concurrency: int = 1,
        lease_ms: int = 30_000,
        wait_ms: int = DEFAULT_WAIT_MS,
        worker: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_ms < 1000:
            raise ValueError("lease_ms must be at least 1000 (the server's minimum)")
        self.queue = queue
        self.worker = worker or f"py-{uuid.uuid4().hex[:12]}"
        self.acked = 0
        self.nacked = 0
        self.termed = 0
        self.fenced = 0
        self._handler = handler
        self._lease_ms = lease_ms
        self._wait_ms = wait_ms
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work(), name=f"queue worker {i}") for i in range(concurrency)]
        self.done: asyncio.Task[None] = loop.create_task(self._run(), name=f"queue listener {queue.group}")
        _RUNNING.add(self.done)
        self.done.add_done_callback(_RUNNING.discard)

    def stop(self) -> None:
        """Lease nothing more; running handlers finish and answer, then `done` completes."""
        self._stopping.set()

    def __await__(self) -> Generator[Any, None, None]:
        return self.done.__await__()

    async def _run(self) -> None:
        try:
            await asyncio.gather(*self._workers)
        finally:
            for task in self._workers:
                task.cancel()

    async def _work(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                messages = await self._lease()
            except StreamsError as exc:
                log.warning("queue %s: lease failed (%s); retrying", self.queue, exc)
                await self._pause(backoff.next())
                continue
            backoff.reset()
            for message in messages:
                await self._process(message)

    async def _lease(self) -> list[QueueMessage]:
        # stop() does not interrupt a lease request: messages the server granted are processed
        # (dropping them would cost each an attempt and a lease expiry). It waits at most wait_ms.
        return await self.queue.lease(self.worker, lease_ms=self._lease_ms, wait_ms=self._wait_ms)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _process(self, message: QueueMessage) -> None:
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(message))
        try:
            outcome = await self._run_handler(message)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        try:
            await self._answer(message, outcome)
        except Fenced as exc:
            self.fenced += 1
            log.warning("queue %s: message %s is no longer ours (%s); not answered", self.queue, message.id, exc)
        except StreamsError as exc:
            # The lease runs out and the message is delivered again (an attempt is lost, not the message).
            log.warning("queue %s: could not answer for message %s (%s)", self.queue, message.id, exc)

    async def _run_handler(self, message: QueueMessage) -> AtomicBuilder | BaseException | None:
        try:
            result = self._handler(message)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # the handler's failure is the message's nack, not the listener's end
            return exc
        if result is not None and not isinstance(result, AtomicBuilder):
            return TypeError(f"a queue handler returns None or kv.atomic(), not {type(result).__name__}")
        return result

    async def _answer(self, message: QueueMessage, outcome: AtomicBuilder | BaseException | None) -> None:
        if isinstance(outcome, Term):
            await self.queue.term(message.token, str(outcome) or "terminated by the handler")
            self.termed += 1
        elif isinstance(outcome, BaseException):
            await self.queue.nack(message.token, _error_text(outcome))
            self.nacked += 1
        elif (await self.queue.ack(message.token, outcome)).ok:
            self.acked += 1
        else:
            await self.queue.nack(message.token, "a check of the handler's atomic operation failed")
            self.nacked += 1

    async def _heartbeat(self, message: QueueMessage) -> None:
        interval = self._lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.queue.extend(message.token, self._lease_ms)
            except Fenced:
                log.warning("queue %s: lost the lease of message %s while its handler ran", self.queue, message.id)
                return
            except StreamsError as exc:
                log.warning("queue %s: could not extend the lease of message %s (%s)", self.queue, message.id, exc)
