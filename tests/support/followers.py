"""Live readers for tests: follow a stream by long-poll or SSE, resuming from their last offset.

Each keeps the bytes it received and counts what happened (204s, retryable errors, broken
connections), so a test can check that every reader ends with the exact stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp

from plugin_streams.shared import sse

RETRYABLE = (502, 503, 504)


@dataclass
class Follower:
    name: str
    offset: str = "-1"
    data: bytearray = field(default_factory=bytearray)
    requests: int = 0
    no_content: int = 0
    unavailable: int = 0
    errors: int = 0
    longest: float = 0.0


async def follow_long_poll(session: aiohttp.ClientSession, url: str, me: Follower, done: asyncio.Event) -> None:
    while not done.is_set():
        started = time.monotonic()
        try:
            async with session.get(url, params={"offset": me.offset, "live": "long-poll"}) as r:
                body = await r.read()
                me.requests += 1
                if r.status == 200:
                    me.data += body
                    me.offset = r.headers["Stream-Next-Offset"]
                elif r.status == 204:
                    me.no_content += 1
                    me.offset = r.headers["Stream-Next-Offset"]
                elif r.status in RETRYABLE:
                    me.unavailable += 1
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError(f"{me.name}: unexpected {r.status} {body[:200]!r}")
        except (aiohttp.ClientError, TimeoutError):
            me.errors += 1
            await asyncio.sleep(0.2)
        finally:
            me.longest = max(me.longest, time.monotonic() - started)


async def follow_sse(session: aiohttp.ClientSession, url: str, me: Follower, done: asyncio.Event) -> None:
    while not done.is_set():
        try:
            # No total timeout on a stream that lasts (the session's would cut it mid-read).
            live = aiohttp.ClientTimeout(total=None, sock_connect=10)
            async with session.get(url, params={"offset": me.offset, "live": "sse"}, timeout=live) as r:
                me.requests += 1
                if r.status in RETRYABLE:
                    me.unavailable += 1
                    await asyncio.sleep(0.2)
                    continue
                assert r.status == 200, f"{me.name}: unexpected {r.status}"
                parser = sse.Parser()
                pending: bytes | None = None  # a data event counts once its control event arrives
                while not done.is_set():
                    try:
                        async with asyncio.timeout(0.25):
                            chunk = await r.content.readany()
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    for event in parser.feed(chunk):
                        if event.event == "data":
                            pending = event.data.encode()
                        elif event.event == "control":
                            if pending is not None:
                                me.data += pending
                                pending = None
                            me.offset = str(json.loads(event.data)["streamNextOffset"])
        except (aiohttp.ClientError, TimeoutError):
            me.errors += 1
            await asyncio.sleep(0.2)
