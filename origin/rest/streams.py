"""Stream resources: create (POST), list (GET with prefix and cursor), describe (GET), delete.

Create has the protocol's PUT semantics: 201 when new, 200 when the stream exists with the
same settings, 409 otherwise. Descriptions and listings change at any time: never cached.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from plugin_streams.origin.rest.access import check, may_read
from plugin_streams.origin.rest.bodies import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    decode_cursor,
    encode_cursor,
    parse_create_body,
)
from plugin_streams.origin.service import StreamService
from plugin_streams.origin.stream import StreamState
from plugin_streams.shared import headers as h
from plugin_streams.shared.auth import AccessPolicy, Right
from plugin_streams.shared.errors import Gone, NotFound
from plugin_streams.shared.rest_pages import parse_limit

JSON_TYPE = "application/json"
#: Names a listing page may examine beyond its `limit` (expired, deleted or not readable ones).
LIST_SCAN_EXTRA = 1000


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(data).encode(), content_type=JSON_TYPE)
    response.headers[h.CACHE_CONTROL] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def describe(state: StreamState) -> dict[str, Any]:
    config = state.config
    retention = config.retention
    return {
        "name": config.path,
        "content_type": config.content_type,
        "next_offset": str(state.offset_at(state.tail)),
        "closed": state.closed,
        "ttl_seconds": config.ttl_seconds,
        "expires_at": config.expires.text if config.expires is not None else None,
        "retention": None
        if retention is None
        else {"max_age_seconds": retention.max_age_seconds, "max_bytes": retention.max_bytes},
        "max_size": config.max_size,
        "created_at": _iso(config.created_ms),
    }


def resource_path(prefix: str, name: str) -> str:
    return f"{prefix}/streams/{quote(name, safe='')}"


class StreamResources:
    def __init__(self, service: StreamService, policy: AccessPolicy, prefix: str) -> None:
        self.service = service
        self.policy = policy
        self.prefix = prefix

    async def create(self, request: web.Request) -> web.Response:
        parsed = parse_create_body(await request.read())
        check(request, self.policy, Right.WRITE, parsed.name)
        result = await self.service.create(parsed.name, parsed.request, b"")
        if not result.created:
            return json_response(describe(result.state))
        location = resource_path(self.prefix, parsed.name)
        return json_response(describe(result.state), 201, {h.LOCATION: location})

    async def describe(self, request: web.Request, name: str) -> web.Response:
        check(request, self.policy, Right.READ, name)
        state = await self.service.live(name)
        return json_response(describe(state))

    async def delete(self, request: web.Request, name: str) -> web.Response:
        check(request, self.policy, Right.ADMIN, name)
        await self.service.delete(name)
        return web.Response(status=204, headers={h.CACHE_CONTROL: "no-store"})

    async def list(self, request: web.Request) -> web.Response:
        """Streams sorted by name, `limit` a page; `next_cursor` (and a Link) while more remain.

        A page examines at most `limit` + LIST_SCAN_EXTRA names, whatever their number and
        however few of them the caller may read: when that runs out first, the page is short
        (possibly empty) and its cursor continues after the last name examined.
        """
        query = request.query
        prefix = query.get("prefix", "")
        limit = parse_limit(query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        after = decode_cursor(query["cursor"]) if "cursor" in query else None
        registry = self.service.registry
        now = self.service.clock_ms()
        page: list[dict[str, Any]] = []
        examined: str | None = None
        budget = limit + LIST_SCAN_EXTRA
        more = False
        for name in await self.service.paths_from(prefix if after is None else max(prefix, after), budget + 1):
            if not name.startswith(prefix):
                break
            if after is not None and name <= after:
                continue
            if len(page) == limit or budget == 0:
                more = True  # some name is left: the next page starts after the last one examined
                break
            budget -= 1
            examined = name
            try:
                state = await registry.find_live(name, now)
            except (NotFound, Gone):
                continue
            if may_read(request, self.policy, name):
                page.append(describe(state))
        cursor = encode_cursor(examined) if more and examined is not None else None
        body: dict[str, Any] = {"streams": page, "next_cursor": cursor}
        headers = {}
        if cursor is not None:
            params = {k: v for k, v in query.items() if k != "cursor"} | {"cursor": cursor}
            headers[h.LINK] = f'<{request.rel_url.raw_path}?{urlencode(params)}>; rel="next"'
        return json_response(body, headers=headers)
