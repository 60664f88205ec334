"""Access control for origin and edge alike: load the policy file, check every stream request.

With no policy file the server is open (development): every request is allowed and every
stream is public. The policy is a TOML file:

    public_read = ["public/"]          # scopes anyone may read (shared.auth.covers)
    signing_key = "a long random secret" # enables signed read URLs (plugin-streams sign)

    [[token]]
    name = "ingest"
    token_sha256 = "<hex sha256 of the token>"   # or: token = "<the token itself>"
    write = ["events/"]
    read = ["events/"]
    admin = []
"""

from __future__ import annotations

import logging
import time
import tomllib
from typing import Final

from aiohttp import web

from plugin_streams.shared.aio.http_errors import Handler
from plugin_streams.shared.auth import OPEN, Access, AccessPolicy, Right, authorize, policy_from_mapping
from plugin_streams.shared.headers import AUTHORIZATION, STREAM_FORKED_FROM
from plugin_streams.shared.paths import STREAM_PREFIX, path_from_url_path

logger = logging.getLogger(__name__)
ACCESS: Final = web.RequestKey("access", Access)
_RIGHTS: Final = {"GET": Right.READ, "HEAD": Right.READ, "PUT": Right.WRITE, "POST": Right.WRITE}


def load_policy(path: str | None, *, role: str = "origin") -> AccessPolicy:
    if path is None:
        if role == "edge":
            return AccessPolicy()  # the origin enforces; cache keys keep private data apart
        logger.warning(
            "NO ACCESS CONTROL: no --auth-config given, so anyone who can reach this port may "
            "create, read, append to and delete every stream. Use this for development only."
        )
        return AccessPolicy()
    with open(path, "rb") as f:
        return policy_from_mapping(tomllib.load(f))


def request_access(request: web.Request) -> Access:
    access = request.get(ACCESS)
    return access if isinstance(access, Access) else OPEN


def access_middleware(policy: AccessPolicy) -> web.middleware:  # type: ignore[valid-type]
    @web.middleware
    async def check_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(STREAM_PREFIX) or request.method == "OPTIONS":
            return await handler(request)
        path = request.match_info.get("path", "")
        right = _RIGHTS.get(request.method, Right.ADMIN)
        now_s = int(time.time())
        auth = request.headers.get(AUTHORIZATION)
        request[ACCESS] = authorize(policy, right, path, authorization=auth, query=request.query, now_s=now_s)
        source = request.headers.get(STREAM_FORKED_FROM)
        if request.method == "PUT" and source is not None:
            authorize(policy, Right.READ, path_from_url_path(source.strip()), authorization=auth, query={}, now_s=now_s)
        return await handler(request)

    return check_access
