"""Content types: matching rules, JSON mode detection and the SSE encoding rule (PROTOCOL.md §9)."""

from __future__ import annotations

import re
from typing import Final

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.headers import JSON_CONTENT_TYPE

_TOKEN: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE_RE: Final = re.compile(rf"\A\s*{_TOKEN}/{_TOKEN}\s*(;.*)?\Z", re.DOTALL)
MAX_CONTENT_TYPE_LENGTH: Final = 256


def validate(content_type: str) -> str:
    if len(content_type) > MAX_CONTENT_TYPE_LENGTH or not _MEDIA_TYPE_RE.match(content_type):
        raise BadRequest(f"invalid Content-Type {content_type[:64]!r}")
    return content_type.strip()


def media_type(content_type: str) -> str:
    """The type/subtype, lower-cased, without parameters: what two content types must share."""
    return content_type.split(";", 1)[0].strip().lower()


def same(a: str, b: str) -> bool:
    return media_type(a) == media_type(b)


def is_json(content_type: str) -> bool:
    return media_type(content_type) == JSON_CONTENT_TYPE


def sse_is_base64(content_type: str) -> bool:
    """Binary streams are base64-encoded in SSE; `text/*` and JSON travel as UTF-8 text."""
    media = media_type(content_type)
    return not (media.startswith("text/") or media == JSON_CONTENT_TYPE)
