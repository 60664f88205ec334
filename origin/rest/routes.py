"""Mounting the REST API: one sub-application under `/streams/api/v1`, with its own error format.

    POST   /streams                  create          GET /streams              list
    GET    /streams/:name            describe        DELETE /streams/:name     delete
    POST   /streams/:name/append     append          GET /streams/:name/read   read
    GET    /streams/:name/tail       SSE or long-poll tail
    GET    /streams/:name/read?before=   the last messages before an offset (origin.rest.earlier)

A name may contain `/`. The last segment `append`, `read` or `tail` is always the action, so a
stream whose own name ends with one of them is addressed with its slashes escaped (`%2F`);
clients may always escape them. The parent app's middlewares (metrics, rate limits) still apply.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from aiohttp import web

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.limits import LiveLimiter
from plugin_streams.origin.metrics import OriginMetrics
from plugin_streams.origin.rest.earlier import BEFORE, EarlierReads
from plugin_streams.origin.rest.messages import MessageHandlers
from plugin_streams.origin.rest.streams import StreamResources
from plugin_streams.origin.rest.tail import TailHandlers
from plugin_streams.origin.service import StreamService
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import json_error_middleware
from plugin_streams.shared.auth import AccessPolicy
from plugin_streams.shared.errors import MethodNotAllowed
from plugin_streams.shared.paths import validate_path

REST_PREFIX: Final = "/streams/api/v1"
_STREAMS: Final = "/streams/"
_ACTION_METHODS: Final = {"append": "POST", "read": "GET", "tail": "GET"}


def split_name(path_safe: str) -> tuple[str, str | None]:
    """(stream name, action or None) from the path after `/streams/`, still %2F-escaped."""
    head, sep, last = path_safe.rpartition("/")
    if sep and last in _ACTION_METHODS:
        return validate_path(unquote(head)), last
    return validate_path(unquote(path_safe)), None


def add_rest_routes(
    app: web.Application,
    service: StreamService,
    config: OriginConfig,
    *,
    policy: AccessPolicy,
    limiter: LiveLimiter,
    metrics: OriginMetrics,
) -> None:
    streams = StreamResources(service, policy, REST_PREFIX)
    messages = MessageHandlers(service, config, policy)
    earlier = EarlierReads(messages)
    tails = TailHandlers(service, config, policy, limiter, metrics, messages)

    async def named(request: web.Request) -> web.StreamResponse:
        name, action = split_name(request.rel_url.path_safe[len(REST_PREFIX + _STREAMS) :])
        method = request.method
        if action is None:
            if method == "GET":
                return await streams.describe(request, name)
            if method == "DELETE":
                return await streams.delete(request, name)
            raise MethodNotAllowed(f"method {method} not allowed", {h.ALLOW: "GET, DELETE"})
        if method != _ACTION_METHODS[action]:
            raise MethodNotAllowed(f"method {method} not allowed", {h.ALLOW: _ACTION_METHODS[action]})
        if action == "append":
            return await messages.append(request, name)
        if action == "read":
            return await (earlier.read if BEFORE in request.query else messages.read)(request, name)
        return await tails.tail(request, name)

    rest = web.Application(middlewares=[json_error_middleware])
    rest.router.add_get("/streams", streams.list, allow_head=False)
    rest.router.add_post("/streams", streams.create)
    rest.router.add_route("*", "/streams/{name:.+}", named)
    app.add_subapp(REST_PREFIX, rest)
