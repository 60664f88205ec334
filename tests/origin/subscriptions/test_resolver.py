"""Webhook name resolution: a name is called only if every address it resolves to is public.

`webhook_url_problem` cannot judge a host name without resolving it, and a name can be re-pointed
after the check (DNS rebinding), so deliveries resolve through PublicResolver. A real delivery to a
name that resolves to loopback must fail before any byte reaches the listener there.
"""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from plugin_streams.origin.subscriptions.resolver import PublicResolver


class FixedResolver(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0) for a in self.addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "addresses",
    [["10.1.2.3"], ["192.168.0.1"], ["169.254.169.254"], ["127.0.0.1"], ["93.184.216.34", "172.16.0.5"], ["::1"]],
)
async def test_a_name_with_any_non_public_address_is_refused(addresses: list[str]) -> None:
    with pytest.raises(OSError, match="non-public"):
        await PublicResolver(FixedResolver(addresses)).resolve("hooks.example.com", 443)


async def test_public_addresses_and_the_development_names_resolve() -> None:
    public = await PublicResolver(FixedResolver(["93.184.216.34"])).resolve("hooks.example.com", 443)
    assert [r["host"] for r in public] == ["93.184.216.34"]
    local = await PublicResolver(FixedResolver(["127.0.0.1"])).resolve("localhost", 80)
    assert [r["host"] for r in local] == ["127.0.0.1"]


async def test_a_delivery_to_a_name_that_points_at_loopback_never_connects(unused_tcp_port: int) -> None:
    hits: list[str] = []

    async def receiver(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", receiver)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        # "rebound.example" stands for a public-looking name whose DNS answer is 127.0.0.1.
        connector = aiohttp.TCPConnector(resolver=PublicResolver(FixedResolver(["127.0.0.1"])))
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.post(f"http://rebound.example:{unused_tcp_port}/hook", data=b"{}")
            # The same listener by its development name is reachable: the refusal is the resolver's.
            plain = aiohttp.TCPConnector(resolver=PublicResolver(FixedResolver(["127.0.0.1"])))
            async with (
                aiohttp.ClientSession(connector=plain) as local,
                local.post(f"http://localhost:{unused_tcp_port}/hook", data=b"{}") as response,
            ):
                assert response.status == 200
    finally:
        await runner.cleanup()
    assert hits == ["/hook"]
