"""The REST API's error format: `{"error": {"code", "message", ...}}`, mapped in one middleware.

The same typed errors as the protocol (shared.errors) with the same statuses and headers; the
body also carries what those headers say (final offset, producer epoch, expected sequence...)
so that clients need not read headers. Errors are never cached.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from aiohttp import web

from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.http_errors import Handler
from plugin_streams.shared.errors import ProtocolError

logger = logging.getLogger(__name__)

#: Error headers repeated in the body, with how their values are typed there.
_DETAILS: Final = {
    h.STREAM_NEXT_OFFSET: ("next_offset", str),
    h.STREAM_EARLIEST_OFFSET: ("earliest_offset", str),
    h.PRODUCER_EPOCH: ("producer_epoch", int),
    h.PRODUCER_EXPECTED_SEQ: ("expected_seq", int),
    h.PRODUCER_RECEIVED_SEQ: ("received_seq", int),
    h.RETRY_AFTER: ("retry_after", int),
}
_HTTP_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    429: "too_many_requests",
    503: "unavailable",
}


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, object] = {"code": code, "message": message}
    for name, value in (headers or {}).items():
        detail = _DETAILS.get(name)
        if detail is not None:
            key, cast = detail
            try:
                error[key] = cast(value)
            except ValueError:
                error[key] = value
    response = web.Response(status=status, body=json.dumps({"error": error}).encode(), content_type="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers[h.CACHE_CONTROL] = "no-store"
    return response


@web.middleware
async def json_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProtocolError as exc:
        return json_error(exc.status, exc.code, exc.reason, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        kept = {k: v for k, v in exc.headers.items() if k not in (h.CONTENT_TYPE, "Content-Length")}
        return json_error(exc.status, code, exc.reason, kept)
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal server error")
