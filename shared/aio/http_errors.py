"""The one place errors become responses.

ProtocolError subclasses carry their status, code and headers; aiohttp's own HTTP exceptions
(413 from the body limit, 405 from the router) keep theirs. Anything else is a bug: it is logged
with its traceback and the client gets a bare 500, never the traceback. A live response that
has already started cannot change its status; it is simply ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from plugin_streams.shared.aio.departure import CLIENT_CLOSED_REQUEST, ClientGone
from plugin_streams.shared.errors import ProtocolError

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=(reason + "\n").encode(), content_type="text/plain")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProtocolError as exc:
        return error_response(exc.status, exc.reason, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.text or exc.reason
        return error_response(exc.status, reason, {k: v for k, v in exc.headers.items() if k != "Content-Type"})
    except ClientGone:
        # Nobody reads this answer; its status says why in the metrics and the access log.
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except ConnectionResetError:
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client left mid-request (a body cut off, a live answer it stopped taking):
            # nothing is wrong with the server, and nobody reads the answer.
            return web.Response(status=CLIENT_CLOSED_REQUEST)
        raise
    except TimeoutError:
        raise
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal server error")
