"""Access control for the REST API: the protocol's policy, rights and credentials, per stream name.

The access middleware guards `/v1/stream/...` by URL; REST URLs name streams differently (and a
create names its stream in the body), so the REST handlers check here once they know the name.
Rights as in the protocol: read for GET, write for create and append, admin for DELETE.
"""

from __future__ import annotations

import time

from aiohttp import web

from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.access import ACCESS
from plugin_streams.shared.auth import Access, AccessPolicy, Right, authorize
from plugin_streams.shared.errors import Forbidden, Unauthorized


def check(request: web.Request, policy: AccessPolicy, right: Right, name: str) -> Access:
    """Allow the request on stream `name` or raise Unauthorized (401) / Forbidden (403)."""
    access = authorize(
        policy,
        right,
        name,
        authorization=request.headers.get(h.AUTHORIZATION),
        query=request.query,
        now_s=int(time.time()),
    )
    request[ACCESS] = access  # cache_scope() decides public/private from it
    return access


def may_read(request: web.Request, policy: AccessPolicy, name: str) -> bool:
    """For listings: whether this caller may read `name` (an invalid token still raises 401)."""
    try:
        check(request, policy, Right.READ, name)
    except Forbidden:
        return False
    except Unauthorized:
        if request.headers.get(h.AUTHORIZATION) is not None:
            raise
        return False
    return True
