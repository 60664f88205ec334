"""The one exception-to-response seam: the same meaning for every API, the body worded by its style."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from plugin_streams.shared.aio.departure import CLIENT_CLOSED_REQUEST, ClientGone
from plugin_streams.shared.aio.http_errors import JSON, error_middleware, json_error_middleware
from plugin_streams.shared.errors import STATUS_CODES, NotFound, ProtocolError, SequenceGap, StreamClosedConflict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def raising(exc: BaseException) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise exc

    return handler


async def answer(middleware: object, exc: BaseException) -> web.Response:
    request = make_mocked_request("GET", "/v1/stream/x")
    response = await middleware(request, raising(exc))  # type: ignore[operator]
    assert isinstance(response, web.Response)
    return response


def body_of(response: web.Response) -> bytes:
    assert isinstance(response.body, bytes)
    return response.body


async def test_a_protocol_error_as_text_and_as_json() -> None:
    error = StreamClosedConflict("stream is closed", {"Stream-Next-Offset": "0000000000000001_0000000000000009"})
    text = await answer(error_middleware, error)
    assert (text.status, text.content_type, body_of(text)) == (409, "text/plain", b"stream is closed\n")
    as_json = await answer(json_error_middleware, error)
    assert (as_json.status, as_json.content_type) == (409, "application/json")
    assert json.loads(body_of(as_json)) == {
        "error": {
            "code": "stream_closed",
            "message": "stream is closed",
            "next_offset": "0000000000000001_0000000000000009",
        }
    }
    for response in (text, as_json):
        assert response.headers["Stream-Next-Offset"] == "0000000000000001_0000000000000009"
        assert response.headers["Cache-Control"] == "no-store"


async def test_json_details_are_typed_and_kept_when_they_are_not() -> None:
    error = SequenceGap("gap", {"Producer-Expected-Seq": "3", "Producer-Received-Seq": "x"})
    details = json.loads(body_of(await answer(json_error_middleware, error)))["error"]
    assert (details["expected_seq"], details["received_seq"]) == (3, "x")


async def test_aiohttp_exceptions_keep_their_status_and_headers() -> None:
    error = web.HTTPMethodNotAllowed("PATCH", ["GET"])
    text = await answer(error_middleware, error)
    assert (text.status, body_of(text), text.headers["Allow"]) == (405, b"405: Method Not Allowed\n", "GET")
    as_json = await answer(json_error_middleware, error)
    assert as_json.headers["Allow"] == "GET"
    assert json.loads(body_of(as_json)) == {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}


@pytest.mark.parametrize("middleware", [error_middleware, json_error_middleware])
async def test_a_bug_is_a_bare_500_and_a_logged_traceback(middleware: object, caplog: pytest.LogCaptureFixture) -> None:
    response = await answer(middleware, RuntimeError("secret detail"))
    assert response.status == 500
    assert b"secret" not in body_of(response)
    assert "secret detail" in caplog.text


@pytest.mark.parametrize("middleware", [error_middleware, json_error_middleware])
async def test_a_client_that_left_is_a_499(middleware: object) -> None:
    assert (await answer(middleware, ClientGone())).status == CLIENT_CLOSED_REQUEST


@pytest.mark.parametrize("middleware", [error_middleware, json_error_middleware])
async def test_timeouts_and_redirects_pass_through(middleware: object) -> None:
    with pytest.raises(TimeoutError):
        await answer(middleware, TimeoutError())
    with pytest.raises(web.HTTPFound):
        await answer(middleware, web.HTTPFound("/ui/"))


def test_a_protocol_error_outside_a_middleware() -> None:
    # The edge's REST proxy answers from inside its handler, through the same style.
    response = JSON.response(NotFound("no such stream"))
    assert response.status == 404
    assert json.loads(body_of(response)) == {"error": {"code": "not_found", "message": "no such stream"}}


def test_every_status_has_one_code() -> None:
    assert STATUS_CODES[400] == "bad_request" and STATUS_CODES[503] == "unavailable"
    assert ProtocolError.code == "internal"
