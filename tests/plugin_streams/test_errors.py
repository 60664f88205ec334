"""plugin_streams.errors: a REST error body becomes its exception."""

from __future__ import annotations

import pytest

from plugin_streams import errors


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", errors.BadRequest),
        (401, "unauthorized", errors.Unauthorized),
        (403, "forbidden", errors.Forbidden),
        (404, "not_found", errors.NotFound),
        (409, "conflict", errors.Conflict),
        (409, "stream_closed", errors.StreamClosed),
        (410, "gone", errors.Gone),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (503, "unavailable", errors.Unavailable),
    ],
)
def test_error_mapping(status: int, code: str, cls: type[errors.StreamsError]) -> None:
    body = f'{{"error": {{"code": "{code}", "message": "m", "earliest_offset": "x"}}}}'.encode()
    error = errors.error_from(status, body)
    assert type(error) is cls and error.code == code and error.status == status
    assert error.details == {"earliest_offset": "x"}
    assert errors.error_from(502, b"<html>bad gateway</html>").message == "<html>bad gateway</html>"
