"""REST inputs to frozen values: the create body and the query parameters of reads and lists.

Pure functions; every malformed input is a BadRequest before anything is looked up. Unknown
fields of the create body are rejected too, so a misspelt setting cannot be silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from plugin_streams.shared import content_types
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.headers import JSON_CONTENT_TYPE
from plugin_streams.shared.parse import MAX_TTL_SECONDS, CreateRequest, Retention, parse_expires_at
from plugin_streams.shared.paths import validate_path
from plugin_streams.shared.producer import MAX_SAFE_INTEGER
from plugin_streams.shared.rest_pages import MAX_READ_LIMIT

DEFAULT_LIST_LIMIT: Final = 100
MAX_LIST_LIMIT: Final = 1000
#: Messages one JSON append may hold: its answer lists an offset per message.
MAX_APPEND_MESSAGES: Final = MAX_READ_LIMIT
_CREATE_FIELDS: Final = frozenset(
    {"name", "content_type", "retention", "max_size", "ttl_seconds", "expires_at", "closed"}
)
_RETENTION_FIELDS: Final = frozenset({"max_age_seconds", "max_bytes"})


@dataclass(frozen=True, slots=True)
class CreateBody:
    name: str
    request: CreateRequest


def _integer(name: str, value: Any, *, minimum: int, maximum: int = MAX_SAFE_INTEGER) -> int:
    # bool is an int in Python; `true` is not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be an integer from {minimum} to {maximum}")
    return value


def _optional_integer(
    data: Mapping[str, Any], name: str, *, minimum: int, maximum: int = MAX_SAFE_INTEGER
) -> int | None:
    value = data.get(name)
    return None if value is None else _integer(name, value, minimum=minimum, maximum=maximum)


def _retention(value: Any) -> Retention | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("retention must be an object")
    unknown = set(value) - _RETENTION_FIELDS
    if unknown:
        raise BadRequest(f"unknown retention field(s): {', '.join(sorted(unknown))}")
    age = _optional_integer(value, "max_age_seconds", minimum=1)
    size = _optional_integer(value, "max_bytes", minimum=1)
    return None if age is None and size is None else Retention(age, size)


def parse_create_body(body: bytes) -> CreateBody:
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(data) - _CREATE_FIELDS
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str):
        raise BadRequest("name is required and must be a string")
    content_type = data.get("content_type", JSON_CONTENT_TYPE)
    if not isinstance(content_type, str):
        raise BadRequest("content_type must be a string")
    expires_text = data.get("expires_at")
    if expires_text is not None and not isinstance(expires_text, str):
        raise BadRequest("expires_at must be an RFC 3339 timestamp")
    ttl = _optional_integer(data, "ttl_seconds", minimum=0, maximum=MAX_TTL_SECONDS)
    if ttl is not None and expires_text is not None:
        raise BadRequest("ttl_seconds and expires_at are mutually exclusive")
    closed = data.get("closed", False)
    if not isinstance(closed, bool):
        raise BadRequest("closed must be true or false")
    request = CreateRequest(
        content_type=content_types.validate(content_type),
        ttl_seconds=ttl,
        expires=parse_expires_at(expires_text) if expires_text is not None else None,
        closed=closed,
        fork=None,
        retention=_retention(data.get("retention")),
        max_size=_optional_integer(data, "max_size", minimum=1),
    )
    return CreateBody(validate_path(name), request)


def encode_cursor(name: str) -> str:
    """An opaque list cursor: the last name returned, which the next page starts after."""
    return base64.urlsafe_b64encode(name.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise BadRequest("malformed cursor") from None
