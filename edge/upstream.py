"""The only origin client: timeouts, hop-by-hop header filtering, error translation.

Requests are forwarded with their end-to-end headers (credentials and producer headers
included) and bodies streamed; responses come back as values. An unreachable origin becomes a
503 with a jittered Retry-After that a client may retry; the edge never retries a write itself.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from plugin_streams.shared.errors import Unavailable

#: RFC 9110 §7.6.1 connection-specific headers, plus ones the edge recomputes itself.
HOP_BY_HOP: Final = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Accept-Encoding",
        "Content-Encoding",
        # Set by the edge's own middleware on every response.
        "Access-Control-Allow-Origin",
        "Access-Control-Expose-Headers",
        "Vary",
        "X-Content-Type-Options",
        "Cross-Origin-Resource-Policy",
        "Date",
        "Server",
    )
)


_SKIP_AUTO: Final = ("Content-Type", "User-Agent")


def end_to_end(headers: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes


def origin_form(target: str) -> str:
    """Only the path and query of a request target (RFC 9112 §3.2): an absolute-form target
    (`GET http://x/v1/stream/s`) must never put its scheme and host after the origin's."""
    if target.startswith("/"):
        return target
    path_qs = URL(target, encoded=True).raw_path_qs
    return path_qs if path_qs.startswith("/") else "/"


def unavailable(reason: str) -> Unavailable:
    return Unavailable(reason, {"Retry-After": str(random.randint(1, 5))})


class Upstream:
    def __init__(self, origin: str, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self.origin = origin.rstrip("/")
        self.session = session
        self.timeout = timeout

    def url(self, path_qs: str) -> str:
        return self.origin + origin_form(path_qs)

    async def request(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterator[bytes] | None = None,
        *,
        timeout: float | None = None,
    ) -> Reply:
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=timeout or self.timeout)
        try:
            async with self.session.request(
                method,
                self.url(path_qs),
                headers=end_to_end(headers),
                data=body,
                timeout=limit,
                allow_redirects=False,
                auto_decompress=False,
                # Never invent a Content-Type: its absence means something to the origin.
                skip_auto_headers=_SKIP_AUTO,
            ) as response:
                return Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unavailable(f"origin unavailable: {type(exc).__name__}") from exc

    async def open_stream(self, path_qs: str, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """A streaming GET (SSE); the caller reads and releases it."""
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        try:
            response = await self.session.get(
                self.url(path_qs), headers=end_to_end(headers), timeout=limit, auto_decompress=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unavailable(f"origin unavailable: {type(exc).__name__}") from exc
        return response
