"""HTTP for the client: base URLs with failover, retries of failed attempts, errors as exceptions.

Every request the client makes is safe to repeat (reads; creates, which answer 200 for the same
settings; appends, which carry idempotent-producer headers), so a connection error, a timeout,
a 5xx or a 429 is retried with the same body and headers after a jittered backoff, moving to the
next base URL, until `retry_for` seconds have passed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
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


def api_base(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def base_urls(url: str | Sequence[str]) -> list[str]:
    """One URL, a comma-separated list, or a sequence of them; each becomes the API base."""
    items = url.split(",") if isinstance(url, str) else list(url)
    bases = [api_base(u) for u in items if u.strip()]
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
    ) -> None:
        self.bases = base_urls(url)
        self.token = token
        self.retry_for = retry_for
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
                error: StreamsError = Unavailable(f"{method} {base}{path}: {type(exc).__name__}: {exc}")
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
