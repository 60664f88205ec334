"""Helpers for edge tests against real processes: metrics scraping, stream set-up, SSE reading."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from plugin_streams.shared import sse

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def raise_nofile(wanted: int = 16384) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        found = dict(_LABEL.findall(match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


async def scrape(session: aiohttp.ClientSession, base_url: str) -> str:
    async with session.get(base_url + "/metrics", timeout=aiohttp.ClientTimeout(total=15)) as r:
        assert r.status == 200
        return await r.text()


async def edge_upstream(session: aiohttp.ClientSession, edge_url: str, kind: str) -> float:
    return metric(await scrape(session, edge_url), "ds_edge_upstream_requests_total", kind=kind)


async def origin_stream_gets(session: aiohttp.ClientSession, origin_url: str) -> float:
    return metric(await scrape(session, origin_url), "ds_origin_http_requests_total", method="GET", route="stream")


async def wait_metric(
    session: aiohttp.ClientSession, base_url: str, name: str, at_least: float, timeout: float, **labels: str
) -> float:
    """Poll /metrics until `name` reaches `at_least`; returns the last value seen."""
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        value = metric(await scrape(session, base_url), name, **labels)
        if value >= at_least:
            return value
        await asyncio.sleep(0.1)
    return value


async def create(
    session: aiohttp.ClientSession, url: str, content_type: str, body: bytes = b"", headers: Mapping[str, str] = {}
) -> str:
    async with session.put(url, data=body, headers={"Content-Type": content_type, **headers}) as r:
        assert r.status == 201, (r.status, await r.text())
        return r.headers["Stream-Next-Offset"]


async def append(
    session: aiohttp.ClientSession, url: str, content_type: str, body: bytes, headers: Mapping[str, str] = {}
) -> str:
    async with session.post(url, data=body, headers={"Content-Type": content_type, **headers}) as r:
        assert r.status in (200, 204), (r.status, await r.text())
        return r.headers["Stream-Next-Offset"]


def offset_at(generation: int, position: int) -> str:
    return f"{generation:016d}_{position:016d}"


def split_offset(offset: str) -> tuple[int, int]:
    generation, position = offset.split("_")
    return int(generation), int(position)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class SSEClient:
    """One SSE reader: data payloads and control events as they arrive (times from perf_counter)."""

    url: str
    start: str
    data: list[str] = field(default_factory=list)
    controls: list[dict[str, object]] = field(default_factory=list)
    received: list[tuple[float, str]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    ended: bool = False
    error: str | None = None  # the connection broke (reset, truncated chunked body)

    @property
    def last_offset(self) -> str | None:
        return str(self.controls[-1]["streamNextOffset"]) if self.controls else None

    def text(self, base64_mode: bool = False) -> bytes:
        if base64_mode:
            import base64

            return b"".join(base64.b64decode(d) for d in self.data)
        return "".join(self.data).encode()

    def messages(self) -> list[object]:
        out: list[object] = []
        for payload in self.data:
            out.extend(json.loads(payload))
        return out

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event, until_offset: list[str]) -> None:
        """Read until `stop` is set and the last control reached `until_offset[0]`, or the response ends."""
        params = {"offset": self.start, "live": "sse"}
        async with session.get(self.url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as r:
            self.status = r.status
            self.connected.set()
            if r.status != 200:
                return
            parser = sse.Parser()
            while True:
                if stop.is_set() and until_offset and self.last_offset == until_offset[0]:
                    return
                try:
                    async with asyncio.timeout(0.25):
                        chunk = await r.content.readany()
                except TimeoutError:
                    continue
                except aiohttp.ClientError as exc:
                    self.error = type(exc).__name__
                    self.ended = True
                    return
                if not chunk:
                    self.ended = True
                    return
                now = time.perf_counter()
                for event in parser.feed(chunk):
                    if event.event == "data":
                        self.data.append(event.data)
                        self.received.append((now, event.data))
                    elif event.event == "control":
                        self.controls.append(json.loads(event.data))


async def until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll `condition` (plain or async) until it holds; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
