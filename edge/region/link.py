"""The link to the origin as the region sees it: up while the change feed delivers heartbeats.

Writes check it to fail fast (503 with a jittered Retry-After) instead of waiting on a dead
connection; followers wait for it to come back instead of hammering a partition.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

logger = logging.getLogger(__name__)


class Link:
    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        gauge.set(0)

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def mark_up(self) -> None:
        if not self._up.is_set():
            logger.info("link to the origin is up")
            self._down.clear()
            self._up.set()
            self._gauge.set(1)

    def mark_down(self) -> None:
        if self._up.is_set():
            logger.warning("link to the origin is down")
            self._up.clear()
            self._down.set()
            self._gauge.set(0)

    async def wait_up(self) -> None:
        await self._up.wait()

    async def wait_down(self) -> None:
        await self._down.wait()
