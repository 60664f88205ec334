"""Measure how long a server's event loop stalls: poll /healthz while something else runs.

`async with HealthzWatch(url) as watch:` polls `url/healthz` on its own connection every few
milliseconds; `watch.worst` is the longest any single poll took (seconds). A server whose loop
is busy with one request answers nothing else meanwhile, so this is that request's freeze.
`timed(url, session.get(...))` runs one request so watched.

A stalled loop answered after seconds, a free one within milliseconds: MAX_STALL leaves a wide
margin for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import aiohttp

from plugin_streams.shared.aio.tasks import spawn

POLL_INTERVAL = 0.01
MAX_STALL = 0.5


class HealthzWatch:
    def __init__(self, base_url: str) -> None:
        self.url = base_url + "/healthz"
        self.worst = 0.0
        self.polls = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HealthzWatch:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        await self._poll()  # connected and warm before the measured work starts
        self.worst = 0.0
        self._task = spawn(self._run(), name="healthz-watch")
        return self

    async def _poll(self) -> None:
        assert self._session is not None
        began = time.monotonic()
        async with self._session.get(self.url) as response:
            await response.read()
            assert response.status == 200
        self.worst = max(self.worst, time.monotonic() - began)
        self.polls += 1

    async def _run(self) -> None:
        while not self._stopping:
            await self._poll()
            await asyncio.sleep(POLL_INTERVAL)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None and self._session is not None
        # Let the poll in flight finish: it is the one that waited behind the measured work.
        self._stopping = True
        try:
            await self._task
        finally:
            await self._session.close()


async def timed(base_url: str, request: Any) -> tuple[int, bytes, float, float]:
    """Run one aiohttp request (its context manager) while watching `base_url`'s /healthz:
    (status, body, seconds the request took, longest /healthz wait meanwhile)."""
    async with HealthzWatch(base_url) as watch:
        began = time.monotonic()
        async with request as response:
            body = await response.read()
            status = response.status
        took = time.monotonic() - began
    return status, body, took, watch.worst
