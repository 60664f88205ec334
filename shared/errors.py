"""Every error a client can see, as one tree; each class carries its HTTP status and a stable code.

    ProtocolError
    ├── BadRequest (400)           malformed headers, offsets, bodies, parameters
    ├── Unauthorized (401)
    ├── Forbidden (403)
    │   └── StaleEpoch             producer epoch below the server's (zombie fencing)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)
    ├── RequestTimeout (408)       a request head or body that stopped arriving
    ├── Conflict (409)
    │   ├── StreamClosedConflict   append to a closed stream (carries the final offset)
    │   └── SequenceGap            producer seq skipped ahead (expected/received)
    ├── Gone (410)                 soft-deleted stream, or offset no longer served
    ├── PayloadTooLarge (413)
    ├── TooManyRequests (429)
    └── Unavailable (503)

Handlers raise these; one seam (shared.aio.http_errors) turns them into responses. Nothing matches on message text.
"""

from __future__ import annotations

from typing import Final


class ProtocolError(Exception):
    status: int = 500
    code: str = "internal"

    def __init__(self, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(ProtocolError):
    status = 400
    code = "bad_request"


class Unauthorized(ProtocolError):
    status = 401
    code = "unauthorized"


class Forbidden(ProtocolError):
    status = 403
    code = "forbidden"


class StaleEpoch(Forbidden):
    code = "stale_epoch"


class NotFound(ProtocolError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ProtocolError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ProtocolError):
    status = 408
    code = "request_timeout"


class Conflict(ProtocolError):
    status = 409
    code = "conflict"


class StreamClosedConflict(Conflict):
    code = "stream_closed"


class SequenceGap(Conflict):
    code = "sequence_gap"


class Gone(ProtocolError):
    status = 410
    code = "gone"


class PayloadTooLarge(ProtocolError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(ProtocolError):
    status = 429
    code = "too_many_requests"


class Unavailable(ProtocolError):
    status = 503
    code = "unavailable"


#: The code of each status, for errors the framework raises rather than a ProtocolError.
STATUS_CODES: Final = {
    cls.status: cls.code
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        Conflict,
        Gone,
        PayloadTooLarge,
        TooManyRequests,
        Unavailable,
    )
}
