"""The only origin client: timeouts, hop-by-hop header filtering, error translation, failover.

Requests are forwarded with their end-to-end headers (credentials and producer headers
included) and bodies streamed; responses come back as values. An unreachable origin becomes a
503 with a jittered Retry-After that a client may retry.

With several origins (edge.origins) a request goes to the current one; when that one fails it
is marked down and the request is tried on the next, within the same client request, if that
cannot do harm: nothing was sent (the connection was never made), or the request is idempotent
(GET, HEAD, OPTIONS, or an append carrying Producer-Id/Epoch/Seq, which the origin deduplicates)
and its body is in memory to send again. A write whose fate is unknown (sent, no answer) is
never repeated: its client gets the 503 (or the origin's 502/503/504) and decides.

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
from plugin_streams.edge.origins import GATEWAY_FAILURES, Origins, failure_reason
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
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_PRODUCER: Final = (h.PRODUCER_ID, h.PRODUCER_EPOCH, h.PRODUCER_SEQ)


def repeatable(method: str, headers: CIMultiDict[str], body: bytes | AsyncIterator[bytes] | None) -> bool:
    """Whether sending this request a second time (to another origin) can do no harm: a safe
    method, or an idempotent producer's append (the protocol deduplicates its (epoch, seq)),
    with a body still in memory."""
    if body is not None and not isinstance(body, bytes):
        return False  # a streamed body was (partly) consumed by the first attempt
    return method in _SAFE or (method == "POST" and all(name in headers for name in _PRODUCER))


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


class _NoAnswer(Exception):
    """One attempt got no answer; `unsent`: the connection was never made, so nothing was sent."""

    def __init__(self, cause: aiohttp.ClientError | TimeoutError) -> None:
        super().__init__(failure_reason(cause))
        self.cause = cause
        self.unsent = isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


class Upstream:
    def __init__(
        self,
        origin: str | Origins,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        health: OriginHealth | None = None,
        errors: Counter | None = None,
    ) -> None:
        if isinstance(origin, Origins):
            self.origins = origin
        else:  # one origin (as before several were possible)
            self.origins = Origins([health if health is not None else OriginHealth(origin.rstrip("/"))])
        self.session = session
        self.timeout = timeout
        self._errors = errors  # ds_edge_upstream_errors, labelled by kind
        self._error_children: dict[str, Counter] = {}

    @property
    def origin(self) -> str:
        """The current origin's base URL."""
        return self.origins.url

    @property
    def health(self) -> OriginHealth:
        """The current origin's health."""
        return self.origins.current

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
        origin = self.origins.current
        self.origins.no_answer(origin, origin.began() - waited, f"no answer within {waited:g} s")
        return Unavailable("origin did not answer", {h.RETRY_AFTER: "2"})

    def stream_broke(self, response: aiohttp.ClientResponse, reason: str) -> None:
        """A streamed response (open_stream) broke while being read: its origin is down."""
        origin = self.origins.owner(str(response.url))
        if origin is not None:
            self.origins.no_answer(origin, origin.began(), reason)

    def url(self, path_qs: str, origin: OriginHealth | None = None) -> str:
        return (origin or self.origins.current).origin + origin_form(path_qs)

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
        kind = kind or upstream_kind(method, path_qs)
        forwarded = end_to_end(headers)
        again = repeatable(method, forwarded, body)
        tried: list[OriginHealth] = []
        while True:
            origin = self._next(tried)
            try:
                reply = await self._send(origin, method, path_qs, forwarded, body, timeout)
            except _NoAnswer as exc:
                self.failed(kind)
                if (exc.unsent or again) and self.origins.next_untried(tried) is not None:
                    continue
                raise unavailable(f"origin unavailable: {type(exc.cause).__name__}") from exc.cause
            if reply.status >= 500:
                self.failed(kind)
            if reply.status in GATEWAY_FAILURES and again and self.origins.next_untried(tried) is not None:
                continue
            return reply

    def _next(self, tried: list[OriginHealth]) -> OriginHealth:
        origin = self.origins.next_untried(tried)
        assert origin is not None  # callers ask again only while one is left
        tried.append(origin)
        return origin

    async def _send(
        self,
        origin: OriginHealth,
        method: str,
        path_qs: str,
        headers: CIMultiDict[str],
        body: bytes | AsyncIterator[bytes] | None,
        timeout: float | None,
    ) -> Reply:
        """One attempt at `origin`; its outcome goes to the origins' health and choice."""
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=timeout or self.timeout)
        began = origin.began()
        try:
            async with self.session.request(
                method,
                self.url(path_qs, origin),
                headers=headers,
                data=body,
                timeout=limit,
                allow_redirects=False,
                auto_decompress=False,
                # Never invent a Content-Type: its absence means something to the origin.
                skip_auto_headers=_SKIP_AUTO,
            ) as response:
                reply = Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.origins.no_answer(origin, began, failure_reason(exc))
            raise _NoAnswer(exc) from exc
        self.origins.answered(origin, reply.status)
        return reply

    async def open_stream(self, path_qs: str, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """A streaming GET (SSE); the caller reads and releases it (and reports a break: stream_broke)."""
        limit = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=None)
        forwarded = end_to_end(headers)
        tried: list[OriginHealth] = []
        while True:
            origin = self._next(tried)
            began = origin.began()
            try:
                response = await self.session.get(
                    self.url(path_qs, origin), headers=forwarded, timeout=limit, auto_decompress=False
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.origins.no_answer(origin, began, failure_reason(exc))
                if self.origins.next_untried(tried) is not None:
                    continue
                raise unavailable(f"origin unavailable: {type(exc).__name__}") from exc
            self.origins.answered(origin, response.status)
            if response.status in GATEWAY_FAILURES and self.origins.next_untried(tried) is not None:
                response.release()
                continue
            return response
