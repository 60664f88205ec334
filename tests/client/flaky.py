"""A flaky gateway for tests: forwards every request to the origin, then loses some answers.

Appends are the interesting case: the origin stores the data, and the client never hears so
(the connection drops, or a 502 comes back), which is exactly when a retry must not duplicate.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

#: Not passed on: hop-by-hop headers, and Content-Encoding (the gateway's client already decoded the body).
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


def _is_append(request: web.Request) -> bool:
    """A REST append (POST .../append) or a protocol one (any POST outside the REST API)."""
    if request.method != "POST":
        return False
    return request.path.endswith("/append") or "/streams/api/" not in request.path


class FlakyGateway:
    def __init__(self, origin: str, *, lose_every: int = 2) -> None:
        self.origin = origin.rstrip("/")
        self.lose_every = lose_every
        self.appends = 0  # append requests that reached the gateway
        self.lost = 0  # ... whose answer was lost after the origin handled them
        self._session: aiohttp.ClientSession | None = None
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.server = TestServer(app)

    async def start(self) -> str:
        self._session = aiohttp.ClientSession()
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        await self.server.close()
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method, self.origin + request.raw_path, headers=headers, data=body or None
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
            reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        if _is_append(request):
            self.appends += 1
            if self.appends % self.lose_every == 1 or self.lose_every == 1:
                self.lost += 1
                if self.lost % 2:
                    assert request.transport is not None
                    request.transport.close()  # the answer never arrives
                    return web.Response(status=200)
                return web.Response(status=502, text="bad gateway")
        return web.Response(status=status, body=payload, headers=reply_headers)
