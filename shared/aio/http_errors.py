"""The one place an exception becomes an error response, for every API of both servers.

What an exception means is decided here, once: ProtocolError subclasses carry their status,
code and headers; aiohttp's own HTTP exceptions (413 from the body limit, 405 from the router)
keep theirs; a client that left gets a 499 nobody reads. Anything else is a bug: it is logged
with its traceback and the client gets a bare 500, never the traceback. A live response that
has already started cannot change its status; it is simply ended.

How an error is worded is the API's choice, its `ErrorStyle`: the protocol answers with the
reason as text (`TEXT`); the REST API (origin and edge alike) with
`{"error": {"code", "message", ...}}` (`JSON`), whose body also carries what the error's
headers say (final offset, producer epoch, expected sequence...) so that clients need not read
headers. Both keep the headers, and neither is ever cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from plugin_streams.shared import caching
from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.departure import CLIENT_CLOSED_REQUEST, ClientGone
from plugin_streams.shared.errors import STATUS_CODES, ProtocolError

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: (status, code, message, headers) -> the response.
Render = Callable[[int, str, str, Mapping[str, str]], web.Response]

#: Headers of an aiohttp exception that describe its own body, not the error.
_BODY_HEADERS: Final = frozenset({h.CONTENT_TYPE.lower(), h.CONTENT_LENGTH.lower()})
#: Error headers repeated in a JSON body, with how their values are typed there.
_JSON_DETAILS: Final = {
    h.STREAM_NEXT_OFFSET: ("next_offset", str),
    h.STREAM_EARLIEST_OFFSET: ("earliest_offset", str),
    h.PRODUCER_EPOCH: ("producer_epoch", int),
    h.PRODUCER_EXPECTED_SEQ: ("expected_seq", int),
    h.PRODUCER_RECEIVED_SEQ: ("received_seq", int),
    h.RETRY_AFTER: ("retry_after", int),
}


def text_body(status: int, code: str, message: str, headers: Mapping[str, str]) -> web.Response:
    """The protocol's errors: the reason as one line of text (the code is for logs, not the body)."""
    response = web.Response(status=status, body=(message + "\n").encode(), content_type="text/plain")
    response.headers[h.CACHE_CONTROL] = caching.NO_STORE
    for name, value in headers.items():
        response.headers[name] = value
    return response


def json_body(status: int, code: str, message: str, headers: Mapping[str, str]) -> web.Response:
    """The REST API's errors: `{"error": {"code", "message", <details from the headers>}}`."""
    error: dict[str, object] = {"code": code, "message": message}
    for name, value in headers.items():
        detail = _JSON_DETAILS.get(name)
        if detail is not None:
            key, cast = detail
            try:
                error[key] = cast(value)
            except ValueError:
                error[key] = value
    response = web.Response(status=status, body=json.dumps({"error": error}).encode(), content_type="application/json")
    for name, value in headers.items():
        response.headers[name] = value
    response.headers[h.CACHE_CONTROL] = caching.NO_STORE
    return response


@dataclass(frozen=True, slots=True)
class ErrorStyle:
    """How one API words its errors."""

    render: Render
    #: What an aiohttp HTTP exception says in the body.
    http_message: Callable[[web.HTTPException], str]

    def response(self, exc: ProtocolError) -> web.Response:
        return self.render(exc.status, exc.code, exc.reason, exc.headers)


TEXT: Final = ErrorStyle(text_body, lambda exc: exc.text or exc.reason)
JSON: Final = ErrorStyle(json_body, lambda exc: exc.reason)


def error_middleware_for(style: ErrorStyle) -> Middleware:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ProtocolError as exc:
            return style.response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            kept = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
            return style.render(exc.status, STATUS_CODES.get(exc.status, "error"), style.http_message(exc), kept)
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
            return style.render(500, ProtocolError.code, "internal server error", {})

    return errors


#: The protocol's routes (the servers' outermost error handling).
error_middleware: Final = error_middleware_for(TEXT)
#: The REST API's routes.
json_error_middleware: Final = error_middleware_for(JSON)
