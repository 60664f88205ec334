"""edge.origins: one current origin, the next when it fails, sticky after a return, downed ones probed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin_streams.edge.origins import Origins
from plugin_streams.shared.aio.tasks import spawn
from tests.support.ports import closed_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Failovers:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def three(failovers: Failovers | None = None, clock: Clock | None = None) -> Origins:
    return Origins.of(
        ["http://a:1", "http://b:1/", "http://c:1"], on_failover=failovers or Failovers(), clock=clock or Clock()
    )


def names(origins: Origins) -> list[str]:
    return [o.origin for o in origins.all]


def test_the_first_is_current_and_urls_lose_their_trailing_slash() -> None:
    origins = three()
    assert origins.url == "http://a:1"
    assert names(origins) == ["http://a:1", "http://b:1", "http://c:1"]
    with pytest.raises(ValueError, match="at least one origin"):
        Origins.of([])


def test_a_failure_moves_to_the_next_and_a_return_does_not_move_back(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="plugin_streams.edge.origins")
    failovers = Failovers()
    origins = three(failovers)
    a, b, c = origins.all
    origins.no_answer(a, a.began(), "ClientConnectorError: refused")
    assert origins.current is b and origins.is_down(a) and failovers.count == 1
    origins.answered(a, 200)  # a is back (a probe): up, but the edge stays on b
    assert not origins.is_down(a) and origins.current is b and failovers.count == 1
    origins.answered(b, 503)  # b cannot serve: the next after it, c
    assert origins.current is c and origins.is_down(b) and failovers.count == 2
    origins.no_answer(c, c.began(), "reset")
    assert origins.current is a and failovers.count == 3  # round the ring to a, which is up
    assert "moving to origin http://b:1: http://a:1 failed (ClientConnectorError: refused)" in caplog.messages


def test_with_every_other_origin_down_the_edge_stays_until_one_answers() -> None:
    failovers = Failovers()
    origins = three(failovers)
    a, b, c = origins.all
    for origin in (b, c):
        origins.no_answer(origin, origin.began(), "refused")
    assert origins.current is a and failovers.count == 0  # not current: no move
    origins.no_answer(a, a.began(), "refused")
    assert origins.current is a and failovers.count == 0  # nowhere better to go
    assert origins.next_untried([a]) is b  # but a request tries the others, in order
    assert origins.next_untried([a, b]) is c
    assert origins.next_untried([a, b, c]) is None
    origins.answered(c, 200)  # c answered that request: it becomes current
    assert origins.current is c and failovers.count == 1
    origins.answered(b, 404)  # any answer but 502/503/504 is an origin that serves
    assert not origins.is_down(b) and origins.current is c


def test_a_request_prefers_origins_that_are_up() -> None:
    origins = three()
    a, b, c = origins.all
    origins.no_answer(b, b.began(), "refused")
    assert origins.next_untried([]) is a
    assert origins.next_untried([a]) is c  # b is down: c first, b last
    assert origins.next_untried([a, c]) is b


def test_a_stale_failure_does_not_mark_an_origin_down() -> None:
    clock = Clock()
    origins = three(clock=clock)
    a = origins.current
    long_poll_began = a.began()
    clock.now += 1
    origins.answered(a, 200)  # another request got an answer since the long-poll began
    clock.now += 30
    origins.no_answer(a, long_poll_began, "TimeoutError")
    assert origins.current is a and not origins.is_down(a)


def test_a_single_origin_never_moves() -> None:
    failovers = Failovers()
    origins = Origins.of(["http://only:1"], on_failover=failovers)
    only = origins.current
    origins.no_answer(only, only.began(), "refused")
    assert origins.current is only and origins.is_down(only)
    assert origins.next_untried([only]) is None
    origins.answered(only, 200)
    assert not origins.is_down(only) and failovers.count == 0


def test_the_origin_of_a_response_is_found_by_its_url() -> None:
    origins = Origins.of(["http://A.example:80/base", "http://b.example:8080"])
    first, second = origins.all
    assert origins.owner("http://a.example/base/v1/stream/x?offset=-1") is first
    assert origins.owner("http://b.example:8080/v1/stream/x") is second
    assert origins.owner("http://b.example:8081/v1/stream/x") is None
    assert origins.owner("http://a.example/basement/x") is None


def test_readiness_reasons_and_reachability() -> None:
    origins = three()
    assert origins.any_reachable()
    for origin in origins.all:
        origins.no_answer(origin, origin.began(), f"refused by {origin.origin[7]}")
    assert not origins.any_reachable()
    reasons = "http://a:1: refused by a; http://b:1: refused by b; http://c:1: refused by c"
    assert origins.unreachable_reason() == reasons
    single = Origins.of(["http://only:1"])
    single.no_answer(single.current, single.current.began(), "refused")
    assert single.unreachable_reason() == "refused"


class Ready:
    def __init__(self) -> None:
        self.status = 503
        self.asked = 0

    async def readyz(self, request: web.Request) -> web.Response:
        self.asked += 1
        return web.Response(status=self.status)


@pytest.fixture
async def ready_origin() -> AsyncIterator[tuple[Ready, str]]:
    fake = Ready()
    app = web.Application()
    app.router.add_get("/readyz", fake.readyz)
    async with TestServer(app, host="127.0.0.1") as server:
        yield fake, str(server.make_url("")).rstrip("/")


async def test_downed_origins_are_probed_until_ready(ready_origin: tuple[Ready, str]) -> None:
    fake, url = ready_origin
    origins = Origins.of([url, f"http://127.0.0.1:{closed_port()}"])
    first, second = origins.all
    async with aiohttp.ClientSession() as session:
        probing = spawn(origins.probe(session, interval=0.05, timeout=1.0), name="probe")
        try:
            await asyncio.sleep(0.2)
            assert fake.asked == 0  # nothing is down: nobody is asked
            origins.answered(first, 503)  # down: the edge moves to the second
            assert origins.current is second
            await asyncio.sleep(0.2)
            assert fake.asked >= 2 and origins.is_down(first)  # asked, but not ready yet
            fake.status = 200
            origins.no_answer(second, second.began(), "refused")  # everyone is down now: stay
            assert origins.current is second
            for _ in range(40):
                if not origins.is_down(first):
                    break
                await asyncio.sleep(0.05)
            assert not origins.is_down(first)
            assert origins.current is first  # the current one was down, this one answers
            assert origins.is_down(second)  # the closed port stays down whatever it is asked
        finally:
            probing.cancel()
