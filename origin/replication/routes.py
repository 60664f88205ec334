"""HTTP routes of the replication API (shared.replication), served by the origin for replicas.

All of it needs `read` on everything (a replica token: `read = [""]`) when access control is on,
as the README documents: a per-path reader or a public path is not enough, since the feeds say
which streams exist. Each route checks so itself, first, before reading any query or body,
since the stream middleware only guards /v1/stream/.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from plugin_streams.origin.replication.changes import ChangeLog
from plugin_streams.origin.replication.configs import describe
from plugin_streams.origin.replication.log_feed import serve_log
from plugin_streams.origin.replication.shared_changes import SharedChangeLog
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.storage.postgres.change_feed import ChangeFeed
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import replication as r
from plugin_streams.shared.auth import AccessPolicy, Right, authorize
from plugin_streams.shared.errors import BadRequest, NotFound, PayloadTooLarge
from plugin_streams.shared.headers import AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, X_ACCEL_BUFFERING
from plugin_streams.shared.paths import MAX_PATH_BYTES, validate_path

MAX_PAGE = 1000
#: A full touch report: every path at its longest, JSON-quoted, with room for escapes.
MAX_TOUCH_BODY = r.MAX_TOUCH_PATHS * (MAX_PATH_BYTES + 8)
MAX_GENERATION_DIGITS = 18


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name} must be a number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}")
    return value


class ReplicationRoutes:
    def __init__(self, service: StreamService, changes: ChangeLog, policy: AccessPolicy, chunk_size: int) -> None:
        self.service = service
        self.changes = changes
        self.policy = policy
        self.chunk_size = chunk_size  # told to replicas: their chunk windows must be the same

    def _authorize(self, request: web.Request) -> None:
        """`read` on every path (the empty prefix), whatever stream the route names."""
        authorize(
            self.policy,
            Right.READ,
            "",
            authorization=request.headers.get(AUTHORIZATION),
            query={},
            now_s=int(time.time()),
        )

    async def changes_feed(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        heartbeat = _number(request, "heartbeat", 1.0, 0.05, 60.0)
        after = int(_number(request, "after", 0, 0, 2**62))
        epoch = request.query.get("epoch")
        response = web.StreamResponse(status=200)
        response.headers[CONTENT_TYPE] = r.CONTENT_TYPE_NDJSON
        response.headers[CACHE_CONTROL] = "no-store"
        response.headers[X_ACCEL_BUFFERING] = "no"
        changes = self.changes
        said = {"access_control": self.policy.enabled, "chunk_size": self.chunk_size}
        try:
            await response.prepare(request)
            lines = changes.since(epoch, after)
            if lines is None:
                await response.write(changes.control(r.RESYNC, **said))
            else:
                await response.write(changes.control(r.HELLO, **said) + b"".join(lines))
            after = changes.seq
            while not self.service.stopping:
                await changes.wait(after, heartbeat)
                lines = changes.since(changes.epoch, after)
                if lines is None:  # fell out of the window while this response was slow
                    await response.write(changes.control(r.RESYNC, **said))
                elif lines:
                    await response.write(b"".join(lines))
                else:
                    await response.write(changes.control(r.HEARTBEAT))
                after = changes.seq
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    async def streams(self, request: web.Request) -> web.Response:
        """Every live or soft-deleted incarnation that holds a path, in path order, a page at a time."""
        self._authorize(request)
        after = request.query.get("after", "")
        limit = int(_number(request, "limit", MAX_PAGE, 1, MAX_PAGE))
        now = self.service.clock_ms()
        page: list[dict[str, Any]] = []
        last_seen: str | None = None
        more = False
        # The registry keeps paths sorted: a page costs its own size, never a sort of every path.
        # Expired paths are skipped, but at most MAX_PAGE of them a page, so the cost stays bounded.
        budget = limit + MAX_PAGE
        for path in await self.service.paths_from(after, budget + 1):
            if path == after:
                continue
            if len(page) >= limit or budget == 0:
                more = True
                break
            budget -= 1
            last_seen = path
            state = await self.service.registry.find(path, now)
            if state is not None:
                page.append(describe(state))
        body = {"streams": page, "next": last_seen if more else None}
        return web.json_response(body, headers={CACHE_CONTROL: "no-store"})

    async def describe_one(self, request: web.Request) -> web.Response:
        """One incarnation by path (the one holding it), or by `generation` (also fork sources)."""
        self._authorize(request)
        path = validate_path(request.match_info["path"])
        state = await self._incarnation(request, path)
        return web.json_response(describe(state), headers={CACHE_CONTROL: "no-store"})

    async def log(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        path = validate_path(request.match_info["path"])
        state = await self._incarnation(request, path)
        start = int(_number(request, "from", state.base, 0, 2**62))
        heartbeat = _number(request, "heartbeat", 5.0, 0.05, 60.0)
        return await serve_log(request, self.service, state, start, heartbeat)

    async def touch(self, request: web.Request) -> web.Response:
        """Replicas report streams read in their region, so reads anywhere keep a TTL alive."""
        self._authorize(request)
        body = await _bounded_body(request, MAX_TOUCH_BODY)
        try:
            paths = json.loads(body)["paths"]
        except (ValueError, KeyError, TypeError, RecursionError):
            # RecursionError: deeply nested arrays; the only valid shape is two levels deep.
            raise BadRequest('body must be JSON: {"paths": [...]}') from None
        if not isinstance(paths, list) or len(paths) > r.MAX_TOUCH_PATHS:
            raise BadRequest(f"paths must be a list of at most {r.MAX_TOUCH_PATHS} stream paths")
        if not all(isinstance(path, str) for path in paths):
            raise BadRequest("paths must be strings")
        now = self.service.clock_ms()
        for path in paths:
            state = await self.service.registry.find(path, now)
            if state is not None and not state.soft_deleted:
                self.service.touch(state, now)
        return web.Response(status=204)

    async def _incarnation(self, request: web.Request, path: str) -> StreamState:
        text = request.query.get("generation")
        registry = self.service.registry
        if text is None:
            state = await registry.find(path, self.service.clock_ms())
        else:
            # ASCII digits only (str.isdigit accepts "²", which int() refuses), and few of them.
            if not (text.isascii() and text.isdigit() and len(text) <= MAX_GENERATION_DIGITS):
                raise BadRequest("generation must be a number")
            state = await registry.by_number(int(text))
            if state is not None and state.config.path != path:
                state = None
        if state is None:
            raise NotFound("stream incarnation not found")
        return state


async def _bounded_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes without reading the rest."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:  # a chunked body that never said its length
            raise PayloadTooLarge(f"body larger than {limit} bytes")
    return bytes(body)


def add_replication_routes(
    app: web.Application, service: StreamService, policy: AccessPolicy, chunk_size: int
) -> ChangeLog:
    changes = ChangeLog()
    if service.shared is not None:  # one feed for every origin on the database
        shared_changes = SharedChangeLog(ChangeFeed(service.shared.store))
        service.shared.follow_changes(shared_changes)
        changes = shared_changes
    service.registry.events = changes
    routes = ReplicationRoutes(service, changes, policy, chunk_size)
    app.router.add_get(r.CHANGES_PATH, routes.changes_feed, allow_head=False)
    app.router.add_get(r.STREAMS_PATH, routes.streams, allow_head=False)
    app.router.add_get(r.STREAMS_PATH + "/{path:.+}", routes.describe_one, allow_head=False)
    app.router.add_get(r.LOG_PREFIX + "{path:.+}", routes.log, allow_head=False)
    app.router.add_post(r.TOUCH_PATH, routes.touch)
    return changes
