"""Name resolution for webhook deliveries that refuses names pointing into private networks.

`urls.webhook_url_problem` judges a URL when a subscription is created, but it cannot judge a
host name without resolving it (which would block), and a name's addresses can change later (DNS
rebinding). So the webhook session resolves through `PublicResolver`: every address a name
resolves to must be public, or the delivery fails like an unreachable receiver. aiohttp connects
to exactly the addresses the resolver returned, so what was checked is what is called. IP literals
never reach a resolver; `urls` has judged them. The development names (`localhost`, `*.localhost`)
keep resolving to loopback, as `urls` allows.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from plugin_streams.origin.subscriptions.urls import is_local_name, unsafe_address


class PublicResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if is_local_name(host.lower()):
            return results
        refused = [result["host"] for result in results if unsafe_address(result["host"])]
        if refused:
            raise OSError(f"webhook host {host!r} resolves to a non-public address ({refused[0]})")
        return results

    async def close(self) -> None:
        await self._inner.close()
