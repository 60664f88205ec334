"""HTTP for the client: base URLs with failover, retries of failed attempts, errors as exceptions.

Every request the client makes is safe to repeat (reads; creates, which answer 200 for the same
settings; appends, which carry idempotent-producer headers), so a connection error, a timeout,
a 5xx or a 429 is retried with the same body and headers after a jittered backoff, moving to the
next base URL, until `retry_for` seconds have passed. With `unreachable_retry_for` set (the CLI
sets it), a request that every base URL answered with "connection refused" (or whose host name
does not resolve) gives up after that many seconds instead: nothing listens there, and a person at
a terminal wants to hear so at once; timeouts, resets and 5xx keep the full budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from multidict import CIMultiDictProxy

from plugin_streams._backoff import Backoff
from plugin_streams.errors import StreamsError, Unavailable, error_from

API_PREFIX: Final = "/streams/api/v1"
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
#: Failures of one attempt (the request may or may not have reached the server).
RETRYABLE_ERRORS: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def is_unreachable(exc: BaseException) -> bool:
    """A connect that failed at once: refused, no route, or a host name that does not resolve."""
    if not isinstance(exc, aiohttp.ClientConnectorError):
        return False
    cause = exc.os_error
    return isinstance(cause, socket.gaierror) or cause.errno in (
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    )


def api_base(url: str, root: str = API_PREFIX) -> str:
    url = url.strip().rstrip("/")
    return url if url.endswith(root) else url + root


def base_urls(url: str | Sequence[str], root: str = API_PREFIX) -> list[str]:
    """One URL, a comma-separated list, or a sequence of them; each becomes the API base.

    `root` is the path the API lives under, added unless a URL already ends with it (the REST
    API's by default; "" keeps each URL as given).
    """
    items = url.split(",") if isinstance(url, str) else list(url)
    bases = [api_base(u, root) for u in items if u.strip()]
    if not bases:
        raise ValueError("at least one server URL is required")
    return bases


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    attempts: int

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise error_from(self.status, self.body)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


class Transport:
    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None = None,
        *,
        retry_for: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        unreachable_retry_for: float | None = None,
        root: str = API_PREFIX,
    ) -> None:
        self.bases = base_urls(url, root)
        self.token = token
        self.retry_for = retry_for
        self.unreachable_retry_for = unreachable_retry_for
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._index = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return self.bases[self._index]

    def failed(self, base: str) -> None:
        """`base` failed: move on to the next URL (unless another caller already did)."""
        if self.bases[self._index] == base:
            self._index = (self._index + 1) % len(self.bases)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        out = dict(extra or {})
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    def timeout(self, read: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout, sock_read=read or self.read_timeout)

    @contextlib.asynccontextmanager
    async def live_get(
        self, url: str, params: Mapping[str, str], read_timeout: float, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET of a live read (a tail's SSE or long-poll): a single attempt with its own read
        timeout; the tail's loop decides about retrying (its reconnect hooks, its give-up time)."""
        async with self.session().get(
            url, params=params, headers=self.headers(headers), timeout=self.timeout(read_timeout)
        ) as response:
            yield response

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        read_timeout: float | None = None,
        retry_for: float | None = None,
    ) -> Response:
        """One logical request, retried as described above; returns the final response."""
        loop = asyncio.get_running_loop()
        budget = self.retry_for if retry_for is None else retry_for
        deadline = loop.time() + budget
        unreachable = self.unreachable_retry_for
        unreachable_deadline = deadline if unreachable is None else loop.time() + min(budget, unreachable)
        backoff = Backoff()
        attempts = 0
        while True:
            base = self.base
            attempts += 1
            hint: float | None = None
            try:
                async with self.session().request(
                    method,
                    base + path,
                    params=params,
                    headers=self.headers(headers),
                    data=data,
                    timeout=self.timeout(read_timeout),
                    allow_redirects=False,
                ) as response:
                    body = await response.read()
                    result = Response(response.status, response.headers, body, attempts)
            except RETRYABLE_ERRORS as exc:
                self.failed(base)
                request = f"{method} {base}{path}"
                error: StreamsError = Unavailable(
                    f"{request}: {type(exc).__name__}: {exc}", details={"request": request}
                )
                error.__cause__ = exc  # names the address and the reason (refused, timed out...)
                if is_unreachable(exc) and attempts >= len(self.bases):
                    deadline = min(deadline, unreachable_deadline)
            else:
                if result.status not in RETRY_STATUSES:
                    return result
                error = error_from(result.status, result.body)
                hint = retry_after(result.headers)
                if result.status != 429:
                    self.failed(base)
            delay = backoff.next()
            if hint is not None:
                delay = max(delay, min(hint, 5.0))
            if loop.time() + delay > deadline:
                raise error
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
