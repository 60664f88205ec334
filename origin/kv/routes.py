"""The KV HTTP API under `/kv/api/v1/{db}`: keys, get-many, list, atomic, watch (README, "KV store").

Shaped for users of the host platform's plugin-keyval (`/keys`, `/atomic`, `/watch`, `/queue/...`),
with Deno KV's semantics and limits. Every answer names the change-stream offset it reflects, so a
client can read a snapshot and then watch from exactly that point without a gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from plugin_streams.origin.handlers import StreamHandlers
from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.databases import KvDatabases, check_name
from plugin_streams.origin.kv.http import (
    answer,
    entry_wire,
    json_body,
    json_value,
    offset_text,
    query_int,
    query_key,
    receipt,
    required_key,
)
from plugin_streams.origin.kv.index import ListSelector
from plugin_streams.origin.kv.queue_routes import QueueRoutes
from plugin_streams.shared import caching, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import json_error_middleware
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.commits import (
    MAX_EXPIRE_IN_MS,
    AtomicCommit,
    DeleteMutation,
    SetMutation,
    commit_from_wire,
    validate_commit,
)
from plugin_streams.shared.kv.keys import encode_key, key_from_wire
from plugin_streams.shared.kv.routes import KV_PREFIX, change_stream_path
from plugin_streams.shared.kv.values import encode_value, value_from_wire

Handler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]


class KvRoutes:
    def __init__(self, databases: KvDatabases, streams: StreamHandlers) -> None:
        self.databases = databases
        self.streams = streams

    async def get(self, request: web.Request) -> web.Response:
        key = required_key(request)
        db = await self.databases.find(request.match_info["db"])
        if db is None:
            return answer({**entry_wire(key, None), "offset": offset_text(None)})
        await db.readable()
        return answer({**entry_wire(key, db.index.get(key, db.clock_ms())), "offset": offset_text(db.offset)})

    async def get_many(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        wires = body.get("keys")
        if not isinstance(wires, list):
            raise BadRequest("keys must be a JSON array of keys")
        keys = [encode_key(key_from_wire(wire)) for wire in wires]
        db = await self.databases.find(request.match_info["db"])
        if db is None:
            return answer({"entries": [entry_wire(key, None) for key in keys], "offset": offset_text(None)})
        await db.readable()
        entries = db.index.get_many(keys, db.clock_ms())
        return answer(
            {
                "entries": [entry_wire(key, entry) for key, entry in zip(keys, entries, strict=True)],
                "offset": offset_text(db.offset),
            }
        )

    async def list(self, request: web.Request) -> web.Response:
        query = request.query
        selector = ListSelector(query_key(request, "prefix"), query_key(request, "start"), query_key(request, "end"))
        limit = query_int(request, "limit", 100)
        reverse = _bool_param(query.get("reverse"), "reverse")
        cursor = query.get("cursor")
        selector.bounds()  # a 400 for a bad selector even on a database never written
        db = await self.databases.find(request.match_info["db"])
        if db is None:
            return answer({"entries": [], "cursor": None, "offset": offset_text(None)})
        await db.readable()
        page = db.index.list(selector, limit=limit, reverse=reverse, cursor=cursor, now_ms=db.clock_ms())
        entries = [entry_wire(entry.key, entry) for entry in page.entries]
        return answer({"entries": entries, "cursor": page.cursor, "offset": offset_text(db.offset)})  # type: ignore[dict-item]

    async def set(self, request: web.Request) -> web.Response:
        key = required_key(request)
        expire_in = query_int(request, "expireIn", None, high=MAX_EXPIRE_IN_MS)
        value = encode_value(value_from_wire(await json_value(request)))
        return await self._commit(request, AtomicCommit((), (SetMutation(key, value, expire_in),)))

    async def delete(self, request: web.Request) -> web.Response:
        return await self._commit(request, AtomicCommit((), (DeleteMutation(required_key(request)),)))

    async def atomic(self, request: web.Request) -> web.Response:
        return await self._commit(request, commit_from_wire(dict(await json_body(request))))

    async def _commit(self, request: web.Request, atomic: AtomicCommit) -> web.Response:
        atomic = validate_commit(atomic)
        db = await self.databases.open(request.match_info["db"])
        written = await db.write(decisions.commit(db, atomic))
        if not written.value:
            return answer({"ok": False}, status=409)
        ids = [message.id for message in written.event.messages()] if written.event else []
        return answer(receipt(db, written, enqueued=ids))  # type: ignore[arg-type]

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """A Durable Streams read of the change stream; `prefix=` (repeatable) keeps matching changes."""
        name = request.match_info["db"]
        check_name(name)
        prefixes = [_prefix(text) for text in request.query.getall("prefix", [])]
        if not prefixes:
            return await self.streams.get(request, change_stream_path(name))
        if request.query.get(h.QUERY_LIVE) == h.LIVE_SSE:
            raise BadRequest("prefix filtering is offered for catch-up and long-poll reads; SSE readers filter locally")
        response = await self.streams.get(request, change_stream_path(name))
        if response.status != 200 or not isinstance(response, web.Response) or response.body is None:
            return response
        return _filtered(request, response, prefixes)


def _prefix(text: str) -> bytes:
    try:
        return encode_key(key_from_wire(json.loads(text)))
    except ValueError:
        raise BadRequest("prefix must be a key as a JSON array") from None


def _filtered(request: web.Request, response: web.Response, prefixes: list[bytes]) -> web.Response:
    events = json.loads(bytes(response.body))  # type: ignore[arg-type]
    kept = []
    for event in events:
        changes = [c for c in event["changes"] if _under(c["key"], prefixes)]
        if changes:
            kept.append({**event, "changes": changes})
    out = {k: v for k, v in response.headers.items() if k not in (h.CONTENT_LENGTH, h.CONTENT_TYPE)}
    tag = hashlib.sha256(b"\0".join(sorted(prefixes))).hexdigest()[:16]
    if h.ETAG in out:
        out[h.ETAG] = out[h.ETAG][:-1] + ":" + tag + '"'
        if caching.if_none_match(request.headers.get(h.IF_NONE_MATCH), out[h.ETAG]):
            return web.Response(status=304, headers={h.ETAG: out[h.ETAG], h.CACHE_CONTROL: out[h.CACHE_CONTROL]})
    body = b"[" + b",".join(jsonmode.compact(event) for event in kept) + b"]"
    return web.Response(status=200, body=body, headers=out, content_type="application/json")


def _under(wire: Any, prefixes: list[bytes]) -> bool:
    key = encode_key(key_from_wire(wire))
    return any(key.startswith(prefix) and len(key) > len(prefix) for prefix in prefixes)


def _bool_param(text: str | None, name: str) -> bool:
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise BadRequest(f"{name} must be true or false")


def add_kv_routes(app: web.Application, databases: KvDatabases, streams: StreamHandlers) -> None:
    routes = KvRoutes(databases, streams)
    queues = QueueRoutes(databases)
    kv = web.Application(middlewares=[json_error_middleware])
    kv.router.add_get("/{db}/keys", routes.get, allow_head=False)
    kv.router.add_put("/{db}/keys", routes.set)
    kv.router.add_delete("/{db}/keys", routes.delete)
    kv.router.add_post("/{db}/get-many", routes.get_many)
    kv.router.add_get("/{db}/list", routes.list, allow_head=False)
    kv.router.add_post("/{db}/atomic", routes.atomic)
    kv.router.add_get("/{db}/watch", routes.watch, allow_head=False)
    queues.add_to(kv)
    app.add_subapp(KV_PREFIX, kv)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await databases.start()
        sweeper = spawn(databases.sweep_forever(), name="kv-sweeper")
        yield
        await cancel_all([sweeper])
        await databases.close()  # a last snapshot of what changed, so the next start replays little

    app.cleanup_ctx.append(lifecycle)
