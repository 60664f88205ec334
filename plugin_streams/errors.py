"""The client's exceptions, one tree; each server error maps to one class by status and code.

StreamsError                 anything the client reports (status/code/message/details)
├── BadRequest (400)
├── Unauthorized (401)       no or unknown token
│   └── Forbidden (403)      the token lacks the right for this stream
├── NotFound (404)
├── Conflict (409)           e.g. create with other settings
│   └── StreamClosed         append to a closed stream (`details["next_offset"]` is final)
├── Gone (410)               offset no longer served (`earliest_offset`), or stream deleted
├── PayloadTooLarge (413)
├── Unavailable              every server unreachable or failing (5xx) until retries ran out
└── NotSupported             the API the client speaks has no such operation (list() in protocol mode)
"""

from __future__ import annotations

import json
from typing import Any


class StreamsError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str = "error", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details: dict[str, Any] = dict(details or {})


class BadRequest(StreamsError):
    pass


class Unauthorized(StreamsError):
    pass


class Forbidden(Unauthorized):
    pass


class NotFound(StreamsError):
    pass


class Conflict(StreamsError):
    pass


class StreamClosed(Conflict):
    pass


class Gone(StreamsError):
    @property
    def earliest_offset(self) -> str | None:
        value = self.details.get("earliest_offset")
        return value if isinstance(value, str) else None


class PayloadTooLarge(StreamsError):
    pass


class Unavailable(StreamsError):
    pass


class NotSupported(StreamsError):
    """The operation is not part of the API this client speaks (no request was made)."""


_BY_STATUS: dict[int, type[StreamsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
}


def error_from(status: int, body: bytes) -> StreamsError:
    """The exception for an error response (the REST body `{"error": {code, message, ...}}`)."""
    details: dict[str, Any] = {}
    code, message = "error", f"HTTP {status}"
    try:
        parsed = json.loads(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            details = {k: v for k, v in error.items() if k not in ("code", "message")}
            code = str(error.get("code", code))
            message = str(error.get("message", message))
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        message = text[:200] or message
    if status == 409 and code == "stream_closed":
        cls: type[StreamsError] = StreamClosed
    elif status >= 500 or status == 429:
        cls = Unavailable
    else:
        cls = _BY_STATUS.get(status, StreamsError)
    return cls(message, status=status, code=code, details=details)
