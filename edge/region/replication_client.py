"""The replication API (shared.replication) as a replica speaks it to the origin, and nothing else.

Describing one incarnation, listing them all, reporting reads of TTL streams, an incarnation's
log feed and the change feed: HTTP and wire formats only. What to replicate, and what a feed's
frames and events mean for the local copy, is decided by the replica (edge.region.replica) and
its followers.

Unary calls time out after three heartbeats and report any failure as Unavailable; the two
feeds are long-lived responses that fail when silent for three of their heartbeats (a network
partition drops no FIN).

Every call asks the edge's current origin (edge.origins) and reports how it went, so when that
origin fails the next call (a follower's retry) asks the next one: the replica's followers resume
from their positions there (a change feed whose epoch that origin does not know answers
`resync`, as after an origin restart).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from plugin_streams.edge.origins import Origins, failure_reason
from plugin_streams.origin.embed import StreamConfig, config_from_fields
from plugin_streams.shared import replication as r
from plugin_streams.shared.errors import Unavailable


@dataclass(frozen=True, slots=True)
class StreamDescription:
    """An incarnation as the origin describes it: its configuration and its earliest record."""

    config: StreamConfig
    retained_from: int

    @classmethod
    def from_json(cls, fields: Mapping[str, Any]) -> StreamDescription:
        return cls(config_from_fields(fields["config"]), int(fields.get("retained_from", 0)))

    @property
    def path(self) -> str:
        return self.config.path


class LogFeed:
    """One open response of an incarnation's log feed: record and heartbeat frames as they arrive."""

    def __init__(self, response: aiohttp.ClientResponse, max_record: int) -> None:
        self._response = response
        self._parser = r.FrameParser(max_record)
        #: 404: the origin has no such incarnation; 410: no longer the records asked for; else None.
        self.missing: int | None = response.status if response.status in (404, 410) else None

    async def read(self) -> list[r.RecordFrame | r.Heartbeat] | None:
        """The frames completed by the next chunk received (maybe none), or None at the end."""
        if self.missing is not None:
            return None
        data = await self._response.content.readany()
        return self._parser.feed(data) if data else None

    def close(self) -> None:
        """Drop the connection now (the link is lost): a pending read fails at once."""
        self._response.close()


class ChangeFeed:
    """One open response of the change feed: one JSON event a line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def next_event(self) -> dict[str, Any] | None:
        """The next event (raises ValueError on a line that is not JSON), or None at the end."""
        while line := await self._response.content.readline():
            if line.strip():
                event: dict[str, Any] = json.loads(line)
                return event
        return None


class ReplicationClient:
    def __init__(
        self,
        origin: str | Origins,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str],
        *,
        heartbeat: float = 5.0,
    ) -> None:
        self._origins = origin if isinstance(origin, Origins) else Origins.of([origin])
        self._session = session
        self._headers = dict(headers)
        self.heartbeat = heartbeat  # of each log feed while idle; three of them bound a unary call

    # -- unary calls ------------------------------------------------------------------------

    async def describe(self, path: str, generation: int | None = None) -> StreamDescription | None:
        """The incarnation now at `path` (or its `generation`), or None: the origin has none."""
        params = None if generation is None else {"generation": str(generation)}
        described = await self._get_json(f"{r.STREAMS_PATH}/{quote(path, safe='/')}", params)
        return None if described is None else StreamDescription.from_json(described)

    async def list_streams(self) -> dict[str, StreamDescription]:
        """Every incarnation that holds a path at the origin, by path (the listing, page by page)."""
        streams: dict[str, StreamDescription] = {}
        after = ""
        while True:
            page = await self._get_json(r.STREAMS_PATH, {"after": after, "limit": "1000"})
            if page is None:
                raise Unavailable("the origin did not list its streams")
            for fields in page["streams"]:
                described = StreamDescription.from_json(fields)
                streams[described.path] = described
            if not page.get("next"):
                return streams
            after = page["next"]

    async def touch(self, paths: Sequence[str]) -> list[str]:
        """Report reads of `paths`; returns those not reported (the origin went away), to retry later.

        The origin takes at most MAX_TOUCH_PATHS a report: a larger set in one post would be
        refused with 400 and retried forever, so it goes in batches.
        """
        for first in range(0, len(paths), r.MAX_TOUCH_PATHS):
            try:
                await self._post_json(r.TOUCH_PATH, {"paths": list(paths[first : first + r.MAX_TOUCH_PATHS])})
            except Unavailable:
                return list(paths[first:])
        return []

    # -- feeds ------------------------------------------------------------------------------

    @asynccontextmanager
    async def log(self, path: str, generation: int, start: int, max_record: int) -> AsyncIterator[LogFeed]:
        """The log feed of incarnation `generation` at `path` from position `start`.

        Raises aiohttp errors when the origin cannot be reached or answers anything but 200, 404, 410.
        """
        params = {"generation": str(generation), "from": str(start), "heartbeat": str(self.heartbeat)}
        async with self._get(
            f"{r.LOG_PREFIX}{quote(path, safe='/')}", params, _silence_timeout(self.heartbeat)
        ) as response:
            if response.status not in (200, 404, 410):
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=(await response.text())[:200]
                )
            yield LogFeed(response, max_record)

    @asynccontextmanager
    async def changes(self, after: int, epoch: str | None, heartbeat: float) -> AsyncIterator[ChangeFeed]:
        """The change feed after event `after` of `epoch` (None: from a hello), beating every `heartbeat` s."""
        params = {"after": str(after), "heartbeat": str(heartbeat)}
        if epoch is not None:
            params["epoch"] = epoch
        async with self._get(r.CHANGES_PATH, params, _silence_timeout(heartbeat)) as response:
            if response.status != 200:
                raise Unavailable(f"change feed answered {response.status}")
            yield ChangeFeed(response)

    # -- plumbing ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _get(
        self, path: str, params: dict[str, str] | None, timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET of the current origin; no answer, a break while reading, or a 502/503/504 marks it down."""
        origin = self._origins.current
        try:
            async with self._session.get(
                origin.origin + path, params=params, headers=self._headers, timeout=timeout
            ) as response:
                self._origins.answered(origin, response.status)
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not isinstance(exc, aiohttp.ClientResponseError):  # (an answer: reported already)
                # A feed that breaks breaks now, however long ago it began: never a stale failure.
                self._origins.no_answer(origin, origin.began(), failure_reason(exc))
            raise

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.heartbeat * 3)
        try:
            async with self._get(path, params, timeout) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise Unavailable(f"origin answered {response.status} to {path}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Unavailable(f"origin unavailable: {type(exc).__name__}") from exc

    async def _post_json(self, path: str, body: object) -> None:
        timeout = aiohttp.ClientTimeout(total=self.heartbeat * 3)
        origin = self._origins.current
        try:
            async with self._session.post(
                origin.origin + path, json=body, headers=self._headers, timeout=timeout
            ) as response:
                await response.read()
            self._origins.answered(origin, response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._origins.no_answer(origin, origin.began(), failure_reason(exc))
            raise Unavailable(f"origin unavailable: {type(exc).__name__}") from exc


def _silence_timeout(heartbeat: float) -> aiohttp.ClientTimeout:
    """A feed's connection silent for three heartbeats is a dead one."""
    silence = heartbeat * 3
    return aiohttp.ClientTimeout(total=None, sock_connect=silence, sock_read=silence)
