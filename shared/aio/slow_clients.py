"""Live writes a client cannot hold forever by not reading.

An SSE response writes as events come; aiohttp's `write` waits (drains) whenever the socket's
buffers are full. A client that never reads would leave that write waiting for ever, with its
live slot, past the response's max age (which is only checked between writes). So every live
write goes through `write_live`: it is cut off if the bytes still unsent from earlier writes
exceed the client's buffer budget, or if the write stays blocked for the write timeout. Cut
off means the connection is aborted (its unsent bytes dropped) and `SlowClient`, a
ConnectionResetError, ends the response like any client that went away; the client resumes
from the last offset it did read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web


class SlowClient(ConnectionResetError):
    """A live client was cut off for not reading what it was sent."""


@dataclass(frozen=True, slots=True)
class WriteBudget:
    buffer: int  # bytes still unsent before the next write cuts the client off
    timeout: float  # seconds one write may stay blocked


async def write_live(request: web.BaseRequest, response: web.StreamResponse, data: bytes, budget: WriteBudget) -> None:
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("client gone")
    if transport.get_write_buffer_size() > budget.buffer:
        transport.abort()
        raise SlowClient(f"more than {budget.buffer} bytes unread")
    try:
        async with asyncio.timeout(budget.timeout):
            await response.write(data)
    except TimeoutError:
        transport.abort()
        raise SlowClient(f"a write blocked for {budget.timeout} s") from None


async def end_live(request: web.BaseRequest, response: web.StreamResponse, budget: WriteBudget) -> None:
    """`write_eof`, which drains too, under the same write timeout."""
    try:
        async with asyncio.timeout(budget.timeout):
            await response.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise SlowClient(f"the last write blocked for {budget.timeout} s") from None
