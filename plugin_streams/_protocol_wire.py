"""What the client reads off a Durable Streams protocol response: headers, bodies, errors.

Used by the protocol's requests (`_protocol`) and its live tail (`_protocol_tail`). A stream's
content type decides what a message is: a JSON stream's response is one array whose elements are
the messages; a `text/*` or binary stream has no message boundaries, so each response body (or
SSE data event) is one message, a str or bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from plugin_streams._positions import json_messages
from plugin_streams.errors import BadRequest, StreamClosed, StreamsError, error_from
from plugin_streams.models import Message, StreamInfo, is_json_type

NEXT_OFFSET: Final = "Stream-Next-Offset"
UP_TO_DATE: Final = "Stream-Up-To-Date"
CLOSED: Final = "Stream-Closed"
TTL: Final = "Stream-TTL"
EXPIRES_AT: Final = "Stream-Expires-At"
CURSOR: Final = "Stream-Cursor"
SSE_DATA_ENCODING: Final = "Stream-SSE-Data-Encoding"
PRODUCER_EPOCH: Final = "Producer-Epoch"
PRODUCER_EXPECTED_SEQ: Final = "Producer-Expected-Seq"

Kind = Literal["json", "text", "bytes"]

#: The client's error codes for the protocol's bare status codes (its error bodies are free text).
_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
}


def flag(headers: Mapping[str, str], name: str) -> bool:
    return headers.get(name, "").strip().lower() == "true"


def content_kind(content_type: str) -> Kind:
    if is_json_type(content_type):
        return "json"
    return "text" if content_type.strip().lower().startswith("text/") else "bytes"


def stream_info(name: str, headers: Mapping[str, str]) -> StreamInfo:
    """The description a HEAD (or a create) gives; the protocol has no retention or size limit."""
    ttl = headers.get(TTL)
    return StreamInfo(
        name=name,
        content_type=headers.get("Content-Type", "application/octet-stream"),
        next_offset=required(headers, NEXT_OFFSET),
        closed=flag(headers, CLOSED),
        ttl_seconds=int(ttl) if ttl is not None and ttl.isdigit() else None,
        expires_at=headers.get(EXPIRES_AT),
        retention=None,
        max_size=None,
        created_at="",
    )


def required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise StreamsError(f"the server's answer has no {name} header: is this a Durable Streams server?")
    return value


def messages(kind: Kind, start: str, skip: int, body: bytes, end: str) -> list[Message]:
    """The messages of one response body read from offset `start` (minus `skip` already delivered)."""
    if kind == "json":
        values = json.loads(body) if body.strip() else []
        if not isinstance(values, list):
            raise StreamsError("a JSON stream's read did not return an array")
        return json_messages(start, skip, values, end)
    if skip:
        raise BadRequest("a position with a message count belongs to a JSON stream", code="bad_offset")
    if not body:
        return []
    return [Message(end, body.decode("utf-8", "replace") if kind == "text" else body)]


def protocol_error(status: int, headers: Mapping[str, str], body: bytes, name: str) -> StreamsError:
    """The client's exception for a protocol error answer about stream `name`."""
    error = error_from(status, body)
    if status == 409 and flag(headers, CLOSED):
        details: dict[str, Any] = {"next_offset": headers.get(NEXT_OFFSET)}
        return StreamClosed(f"stream {name!r} is closed", status=status, code="stream_closed", details=details)
    if error.code == "error":
        error.code = _CODES.get(status, "error")
    if status == 404:
        _reword(error, f"stream {name!r} not found")
    elif not body.strip():
        _reword(error, f"HTTP {status} for stream {name!r}")
    return error


def _reword(error: StreamsError, message: str) -> None:
    # The protocol's error bodies are free text (often none), and never name the stream.
    error.message = message
    error.args = (message,)
