"""The only origin client: timeouts, hop-by-hop header filtering, error translation.

Requests are forwarded with their end-to-end headers (credentials and producer headers
included) and bodies streamed; responses come back as values. An unreachable origin becomes a
503 with a jittered Retry-After that a client may retry; the edge never retries a write itself.

Every outcome is reported: to the origin's health (edge.origin_health: any answer means it is
reachable, no answer that it may not be) and, for a failure, to `ds_edge_upstream_errors_total`
under the request's kind (upstream_kind). A failure is no answer (refused, reset, timed out) or a
5xx answer. A streamed response (open_stream) is counted by its reader when it fails or breaks:
only the reader sees it break, and one failure must count once.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import Counter
from yarl import URL

from plugin_streams.edge.origin_health import OriginHealth
from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import Unavailable
from plugin_streams.shared.rest_routes import QUERY_MODE, rest_resource

#: RFC 9110 §7.6.1 connection-specific headers, plus ones the edge recomputes itself.
HOP_BY_HOP: Final = frozenset(
    name.lower()
    for name in (
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


_WRITES: Final = frozenset({"PUT", "POST", "DELETE", "PATCH"})


def upstream_kind(method: str, path_qs: str) -> str:
    """The bounded `kind` label of an upstream request, from its method and target alone.

    write, head, long_poll, sse, catch_up (a read of data), describe (the REST API's list and
    describe), for the protocol's paths and the REST API's alike.
    """
    if method in _WRITES:
        return "write"
    if method == "HEAD":
        return "head"
    url = URL(origin_form(path_qs), encoded=True)
    live = url.query.get(h.QUERY_LIVE)
    resource = rest_resource(url.path)
    if resource == "tail":
        live = h.LIVE_LONG_POLL if url.query.get(QUERY_MODE) == h.LIVE_LONG_POLL else h.LIVE_SSE
    elif resource == "streams":
        return "describe"
    if live == h.LIVE_LONG_POLL:
        return "long_poll"
    if live == h.LIVE_SSE:
        return "sse"
    return "catch_up"


class Upstream:
    def __init__(
        self,
        origin: str,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        health: OriginHealth | None = None,
        errors: Counter | None = None,
    ) -> None:
        self.origin = origin.rstrip("/")
        self.session = session
        self.timeout = timeout
        self.health = health if health is not None else OriginHealth(self.origin)
        self._errors = errors  # ds_edge_upstream_errors, labelled by kind
        self._error_children: dict[str, Counter] = {}

    def failed(self, kind: str) -> None:
        """Count one failed upstream request of `kind` (also for readers of a streamed response)."""
        if self._errors is None:
            return
        child = self._error_children.get(kind)
        if child is None:
            child = self._error_children[kind] = self._errors.labels(kind)
        child.inc()

    def no_answer(self, kind: str, waited: float) -> Unavailable:
        """What to raise when a client waited `waited` s for an answer a shared upstream request
        (an SSE hub's first event) has not brought: counted and reported like any failure."""
        self.failed(kind)
        self.health.failed(self.health.began() - waited, f"no answer within {waited:g} s")
        return Unavailable("origin did not answer", {h.RETRY_AFTER: "2"})

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
        kind: str | None = None,
    ) -> Reply:
        """`kind` labels a failure (default: upstream_kind of the method and target)."""
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=timeout or self.timeout)
        began = self.health.began()
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
                reply = Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failed(kind or upstream_kind(method, path_qs))
            self.health.failed(began, _reason(exc))
            raise unavailable(f"origin unavailable: {type(exc).__name__}") from exc
        self.health.answered()
        if reply.status >= 500:
            self.failed(kind or upstream_kind(method, path_qs))
        return reply

    async def open_stream(self, path_qs: str, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """A streaming GET (SSE); the caller reads and releases it."""
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        began = self.health.began()
        try:
            response = await self.session.get(
                self.url(path_qs), headers=end_to_end(headers), timeout=limit, auto_decompress=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.health.failed(began, _reason(exc))
            raise unavailable(f"origin unavailable: {type(exc).__name__}") from exc
        self.health.answered()
        return response


def _reason(exc: BaseException) -> str:
    """One line on why a request got no answer, e.g. `ClientConnectorError: Cannot connect to host ...`."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
