"""The origin's fast lane for appends: small POSTs decided and answered without aiohttp's Request.

Most of a small append's CPU went to aiohttp's request and response machinery (Request object,
router, middlewares, handler coroutine, header building), not to the append. The connection
(shared.aio.fast_lane) offers this lane each request whose whole body arrived with it; the lane
takes a plain append:

- POST, HTTP/1.1 keep-alive, a Content-Length body of at most `body_limit` bytes, no Expect,
  Content-Encoding or Transfer-Encoding, and a stream path that needs no decoding (no `%`, no
  query) and is routed to the stream handlers (not the `__ds` subscription routes);
- decided by the service's own rules, in the same order, and committed by the same group
  commit (StreamService.append_now): only the lookup and the wait differ, as the lane waits on
  the commit's future with a callback instead of a handler coroutine;
- answered with a head rendered once per header set (shared.aio.rendered.Template), the same
  bytes aiohttp would write, and counted and logged by the connection's observer.

Everything else is declined and goes to aiohttp exactly as before: other requests, an origin
with an access policy or a rate limit (their middlewares would judge the request first), a
shared engine, a large JSON body, and every refusal (the handlers raise the same error again and
word it). Only a failed write, known after the append was accepted, is answered here, with the
error response the error middleware would give.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import hdrs
from aiohttp.http import HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from cachetools import LRUCache

from plugin_streams.origin.handlers import append_headers, append_status
from plugin_streams.origin.service import Appending, StreamService
from plugin_streams.origin.subscriptions.views import ROUTE_PREFIX
from plugin_streams.shared import parse
from plugin_streams.shared.aio.fast_lane import FastConnection
from plugin_streams.shared.aio.http_errors import TEXT
from plugin_streams.shared.aio.rendered import HOLES, Rendered, Template
from plugin_streams.shared.errors import ProtocolError
from plugin_streams.shared.paths import STREAM_PREFIX, validate_path

logger = logging.getLogger(__name__)

#: Largest body the lane takes: a small append arrives whole in a packet or two; larger ones
#: gain nothing from the lane and go the ordinary way.
BODY_LIMIT: Final = 64 * 1024
MAX_PATHS: Final = 16_384  # remembered request targets...
#: ...of at most this many characters, so that what is remembered stays a few MiB whatever
#: targets clients send (a longer one is judged again each time: a few microseconds).
MAX_REMEMBERED_TARGET: Final = 256
#: Request headers that aiohttp acts on before the handler runs: such requests go its way.
_NOT_PLAIN: Final = (hdrs.EXPECT, hdrs.CONTENT_ENCODING, hdrs.TRANSFER_ENCODING)
_SUBSCRIPTIONS: Final = ROUTE_PREFIX[len(STREAM_PREFIX) :]  # "__ds": routed to the subscription API


class AppendLane:
    """Takes plain appends (see the module docstring); `body_limit` tells the connection so."""

    def __init__(self, service: StreamService, *, max_body: int) -> None:
        self.service = service
        self.body_limit = min(BODY_LIMIT, max_body)  # never past the app's own body limit (413)
        self._paths: LRUCache[str, str | None] = LRUCache(MAX_PATHS)
        self._templates: dict[tuple[int, tuple[str, ...]], Template] = {}

    def take(self, message: RawRequestMessage, conn: FastConnection) -> bool:
        if not _plain_post(message):
            return False
        path = self._path(message.path)
        if path is None:
            return False
        headers = message.headers
        body = conn.body
        try:
            appending = self.service.append_now(path, parse.parse_append(headers, body_empty=not body), body)
        except ProtocolError:
            return False  # refused, nothing changed: the handlers refuse it again and word it
        except Exception:
            logger.exception("fast lane: append to %r failed; declined to the handlers", path)
            return False
        if appending is None:
            return False
        has_body = bool(body)
        waiting = appending.waiting
        if waiting is None or waiting.done():
            conn.send(*self._answer(appending, has_body))
            return True
        conn.park(message)
        waiting.add_done_callback(lambda _: self._answer_parked(conn, appending, has_body))
        return True

    def _path(self, target: str) -> str | None:
        try:
            return self._paths[target]
        except KeyError:
            path = stream_path(target)
            if len(target) <= MAX_REMEMBERED_TARGET:
                self._paths[target] = path
            return path

    def _answer_parked(self, conn: FastConnection, appending: Appending, has_body: bool) -> None:
        head, body = self._answer(appending, has_body)  # settles the append even if nobody reads it
        if not conn.closed:
            conn.answer_parked(head, body)

    def _answer(self, appending: Appending, has_body: bool) -> tuple[bytes, bytes]:
        try:
            result = self.service.settled(appending)
        except ProtocolError as exc:  # the write failed: the error middleware's answer
            response = TEXT.response(exc)
            body = bytes(response.body)  # type: ignore[arg-type]  # (bytes, as text_body makes it)
            return Rendered(response.status, response.headers, len(body)).head(), body
        status = append_status(result, has_body)
        headers = append_headers(result)
        names = tuple(headers.keys())
        template = self._templates.get((status, names))
        if template is None:
            holes = {name: HOLES[i] for i, name in enumerate(names)}
            template = self._templates[(status, names)] = Template(status, holes)
        return template.head(*headers.values()), b""


def _plain_post(message: RawRequestMessage) -> bool:
    """A keep-alive HTTP/1.1 POST with a Content-Length body and nothing aiohttp acts on first."""
    if message.method != "POST" or message.version != HttpVersion11 or message.should_close or message.chunked:
        return False
    headers = message.headers
    return not any(name in headers for name in _NOT_PLAIN)


def stream_path(target: str) -> str | None:
    """The stream a request target names, if the stream handlers get it and it needs no
    decoding; None otherwise (the request goes the ordinary way)."""
    if not target.startswith(STREAM_PREFIX) or not target.isascii() or any(c in target for c in "%#?"):
        return None
    name = target[len(STREAM_PREFIX) :]
    if name == _SUBSCRIPTIONS or name.startswith(_SUBSCRIPTIONS + "/"):
        return None
    try:
        return validate_path(name)
    except ProtocolError:
        return None
