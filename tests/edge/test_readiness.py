"""edge.readiness: /readyz asks the origin at most once per max-age, whatever the number of probes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin_streams.edge.readiness import Readiness
from plugin_streams.edge.upstream import Upstream


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Origin:
    """An origin whose /readyz answers `status` and counts the times it was asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.status = 200
        self.delay = 0.0

    async def readyz(self, request: web.Request) -> web.Response:
        self.asked += 1
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ready\n")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def origin() -> AsyncIterator[tuple[Origin, str]]:
    fake = Origin()
    app = web.Application()
    app.router.add_get("/readyz", fake.readyz)
    async with TestServer(app, host="127.0.0.1") as server:
        yield fake, str(server.make_url("")).rstrip("/")


async def test_many_probes_one_question_per_max_age(origin: tuple[Origin, str], session: aiohttp.ClientSession) -> None:
    fake, url = origin
    fake.delay = 0.05  # concurrent probes arrive while the question is in flight
    clock = Clock()
    readiness = Readiness(lambda: Upstream(url, session, timeout=2), max_age=1.0, clock=clock)
    verdicts = await asyncio.gather(*(readiness.verdict() for _ in range(20)))
    for _ in range(20):
        verdicts.append(await readiness.verdict())
    assert all(v.ready for v in verdicts)
    assert fake.asked == 1
    clock.now += 1.0
    assert (await readiness.verdict()).ready
    assert fake.asked == 2


async def test_not_ready_while_the_origin_is_not(origin: tuple[Origin, str], session: aiohttp.ClientSession) -> None:
    fake, url = origin
    fake.status = 503
    clock = Clock()
    readiness = Readiness(lambda: Upstream(url, session, timeout=2), clock=clock)
    verdict = await readiness.verdict()
    assert not verdict.ready and verdict.reason == "origin not ready (503)"
    fake.status = 200
    assert not (await readiness.verdict()).ready  # still the kept answer
    clock.now += 1.5
    assert (await readiness.verdict()).ready


async def test_an_unreachable_origin_is_named(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    upstream = Upstream(f"http://127.0.0.1:{port}", session, timeout=2)
    verdict = await Readiness(lambda: upstream).verdict()
    assert not verdict.ready
    assert verdict.reason.startswith("origin unreachable (ClientConnectorError")
    assert upstream.health.reachable is False


async def test_a_silent_origin_is_not_waited_for_long(
    origin: tuple[Origin, str], session: aiohttp.ClientSession
) -> None:
    fake, url = origin
    fake.delay = 5.0
    upstream = Upstream(url, session, timeout=10)
    started = asyncio.get_running_loop().time()
    verdict = await Readiness(lambda: upstream, timeout=0.2).verdict()
    assert asyncio.get_running_loop().time() - started < 2
    assert not verdict.ready and "no answer to /readyz within 0.2 s" in verdict.reason


async def test_starting_and_stopping_are_not_ready() -> None:
    readiness = Readiness(lambda: None)
    assert (await readiness.verdict()).reason == "starting"
    readiness.stopping = True
    response = await readiness.handle(None)  # type: ignore[arg-type]
    assert response.status == 503 and response.text == "not ready: shutting down\n"
