"""plugin_streams._transport: base URLs of the REST API; how long refused connects are retried."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from plugin_streams._transport import Transport, base_urls
from plugin_streams.errors import Unavailable
from tests.support.ports import closed_port


def test_base_urls() -> None:
    assert base_urls("http://a:1/, http://b:2/streams/api/v1") == [
        "http://a:1/streams/api/v1",
        "http://b:2/streams/api/v1",
    ]
    assert base_urls(["http://a"]) == ["http://a/streams/api/v1"]
    with pytest.raises(ValueError):
        base_urls(" , ")


async def test_refused_connects_give_up_after_unreachable_retry_for() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    transport = Transport(url, retry_for=30.0, unreachable_retry_for=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable) as raised:
            await transport.request("GET", "/streams")
    finally:
        await transport.close()
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError)
    assert raised.value.details["request"] == f"GET {url}/streams/api/v1/streams"


async def test_without_it_refused_connects_keep_the_full_retry_budget() -> None:
    transport = Transport(f"http://127.0.0.1:{closed_port()}", retry_for=0.8)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await transport.request("GET", "/streams")
    finally:
        await transport.close()
    assert time.monotonic() - started >= 0.3  # more than 0.05 + 0.1 + 0.2 s of waits


async def test_a_503_keeps_the_full_retry_budget_with_unreachable_retry_for_set(aiohttp_server: Any) -> None:
    hits = 0

    async def busy(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/streams/api/v1/streams", busy)
    server = await aiohttp_server(app)
    transport = Transport(str(server.make_url("/")), retry_for=0.8, unreachable_retry_for=0.05)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable):
            await transport.request("GET", "/streams")
    finally:
        await transport.close()
    assert time.monotonic() - started >= 0.3 and hits >= 3  # three waits: at least 0.05 + 0.1 + 0.2 s
