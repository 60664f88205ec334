"""HTTP routes of the reserved `/v1/stream/__ds/` prefix, and the hook that tells subscriptions about writes.

Routes (PROTOCOL.md sections 6-7), answered with JSON and `{"error": {"code", "message"}}` errors:
  GET  __ds/jwks.json                                 the webhook signing key set
  PUT|GET|DELETE __ds/subscriptions/{id}              create or re-confirm, describe, delete
  POST __ds/subscriptions/{id}/streams                link explicit streams
  DELETE __ds/subscriptions/{id}/streams/{stream}     unlink one (`manual%2Fb` is one parameter)
  POST __ds/subscriptions/{id}/callback               webhook ack (Bearer callback token)
  POST __ds/subscriptions/{id}/claim|ack|release      pull-wake workers
Anything else under `__ds` is 404: the first segment is reserved and never names a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.subscriptions.errors import SubscriptionError, invalid, not_found
from plugin_streams.origin.subscriptions.events import SubscriptionEvents
from plugin_streams.origin.subscriptions.manager import SubscriptionManager
from plugin_streams.origin.subscriptions.model import parse_config, stream_path, validate_id
from plugin_streams.origin.subscriptions.persistence import SubscriptionFile
from plugin_streams.origin.subscriptions.streams import ServiceStreams
from plugin_streams.origin.subscriptions.views import ROUTE_PREFIX
from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import Handler
from plugin_streams.shared.aio.location import reached_base

SUBSCRIPTIONS: web.AppKey[SubscriptionManager] = web.AppKey("subscriptions", SubscriptionManager)
STREAM_ROOT = "/v1/stream/"
JSON = "application/json"
JWKS = "application/jwk-set+json"
_SUBSCRIPTION = ROUTE_PREFIX + "/subscriptions/{id}"


def _json(status: int, body: object, content_type: str = JSON) -> web.Response:
    response = web.Response(status=status, body=json.dumps(body).encode(), content_type=content_type)
    response.headers[h.CACHE_CONTROL] = caching.NO_STORE
    return response


def _no_content() -> web.Response:
    return web.Response(status=204, headers={h.CACHE_CONTROL: caching.NO_STORE})


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads) if await request.read() else {}
    except ValueError:
        raise invalid("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    return body


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get(h.AUTHORIZATION, "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SubscriptionError("TOKEN_INVALID", "missing or malformed Authorization: Bearer header")
    return token.strip()


def _method(request: web.Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise SubscriptionError("METHOD_NOT_ALLOWED", f"use {', '.join(allowed)}")


class SubscriptionRoutes:
    def __init__(self, manager: SubscriptionManager, config: OriginConfig) -> None:
        self.manager = manager
        self.config = config

    def _base_url(self, request: web.Request) -> str:
        return self.config.public_url.rstrip("/") if self.config.public_url else reached_base(request)

    async def jwks(self, request: web.Request) -> web.Response:
        _method(request, "GET", "HEAD")
        response = _json(200, self.manager.key.jwks(), JWKS)
        response.headers[h.CACHE_CONTROL] = "public, max-age=300"
        return response

    async def subscription(self, request: web.Request) -> web.Response:
        _method(request, "PUT", "GET", "DELETE")
        subscription_id = validate_id(request.match_info["id"])
        if request.method == "GET":
            return _json(200, self.manager.describe(self.manager.get(subscription_id)))
        if request.method == "DELETE":
            await self.manager.delete(subscription_id)
            return _no_content()
        config = parse_config(await _body(request))
        subscription, created = await self.manager.create_or_confirm(subscription_id, config, self._base_url(request))
        return _json(201 if created else 200, self.manager.describe(subscription))

    async def add_streams(self, request: web.Request) -> web.Response:
        _method(request, "POST")
        streams = (await _body(request)).get("streams")
        if not isinstance(streams, list) or not streams:
            raise invalid("streams must be a non-empty array of stream paths")
        paths = [stream_path(item, "streams[]") for item in streams]
        await self.manager.add_streams(request.match_info["id"], paths)
        return _no_content()

    async def remove_stream(self, request: web.Request) -> web.Response:
        _method(request, "DELETE")
        await self.manager.remove_stream(request.match_info["id"], stream_path(request.match_info["stream"], "stream"))
        return _no_content()

    async def callback(self, request: web.Request) -> web.Response:
        return await self._ack(request, pull=False)

    async def ack(self, request: web.Request) -> web.Response:
        return await self._ack(request, pull=True)

    async def _ack(self, request: web.Request, *, pull: bool) -> web.Response:
        _method(request, "POST")
        token = _bearer(request)
        next_wake = await self.manager.acknowledge(request.match_info["id"], token, await _body(request), pull=pull)
        return _json(200, {"ok": True, "next_wake": next_wake})

    async def claim(self, request: web.Request) -> web.Response:
        _method(request, "POST")
        worker = (await _body(request)).get("worker")
        if not isinstance(worker, str) or not worker:
            raise invalid("worker must be a non-empty string")
        return _json(200, await self.manager.claim(request.match_info["id"], worker))

    async def release(self, request: web.Request) -> web.Response:
        _method(request, "POST")
        token = _bearer(request)
        await self.manager.release(request.match_info["id"], token, await _body(request))
        return _no_content()

    async def reserved(self, request: web.Request) -> web.Response:
        raise not_found()


def _answering_errors(handler: Handler) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SubscriptionError as exc:
            return _json(exc.status, exc.body())

    return handle


@web.middleware
def add_subscription_routes(app: web.Application, service: StreamService, config: OriginConfig) -> None:
    """Route `__ds` (call before the stream routes) and run the manager with the app."""
    store = SubscriptionFile(config.data_dir) if config.engine == "file" else None
    manager = SubscriptionManager(ServiceStreams(service), store)
    app[SUBSCRIPTIONS] = manager
    routes = SubscriptionRoutes(manager, config)
    table: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        (ROUTE_PREFIX + "/jwks.json", routes.jwks),
        (_SUBSCRIPTION, routes.subscription),
        (_SUBSCRIPTION + "/streams", routes.add_streams),
        (_SUBSCRIPTION + "/streams/{stream:.+}", routes.remove_stream),
        (_SUBSCRIPTION + "/callback", routes.callback),
        (_SUBSCRIPTION + "/claim", routes.claim),
        (_SUBSCRIPTION + "/ack", routes.ack),
        (_SUBSCRIPTION + "/release", routes.release),
        (ROUTE_PREFIX, routes.reserved),
        (ROUTE_PREFIX + "/{rest:.*}", routes.reserved),
    ]
    for path, handler in table:
        app.router.add_route("*", path, _answering_errors(handler))

    async def running(app: web.Application) -> AsyncIterator[None]:
        # Chained at start-up, after every route (replication's change log too) is in place.
        service.registry.events = SubscriptionEvents(manager, service.registry.events)
        await manager.start()
        yield
        await manager.close()

    app.cleanup_ctx.append(running)
