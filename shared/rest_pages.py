"""REST read pages: their parameters, and the headers and body of a page, for origin and edge alike.

A page is the messages after an offset, at most `limit` of them and at most one catch-up chunk.
The origin renders pages from its log; an edge renders them from what it holds (a cached page, a
hub's recent messages). Both go through this module, so a page reads the same from either.

- `format=json` (default) answers `{"messages": [{"offset", "data"}...], "next_offset",
  "up_to_date", "closed", "encoding"}`; `format=raw` (or an Accept naming only
  application/octet-stream) answers the bytes in the stream's own representation.
- A message's offset is the position just after it; `after=<offset>` resumes right after it.
- `data` is the JSON value itself (JSON streams), a string (`text/*`), or base64 (others).
"""

from __future__ import annotations

import base64
import enum
import json
import random
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlencode

from plugin_streams.shared import caching, content_types, sse
from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import START, RequestedOffset, parse_read_offset

DEFAULT_READ_LIMIT: Final = 1000
MAX_READ_LIMIT: Final = 10_000
RAW_TYPE: Final = "application/octet-stream"


class Encoding(enum.Enum):
    JSON = "json"
    TEXT = "text"
    BASE64 = "base64"


def encoding_of(content_type: str) -> Encoding:
    if content_types.is_json(content_type):
        return Encoding.JSON
    if content_types.media_type(content_type).startswith("text/"):
        return Encoding.TEXT
    return Encoding.BASE64


# -- parameters -------------------------------------------------------------------------------


def parse_limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    text = query.get("limit")
    if text is None:
        return default
    # ASCII digits only (str.isdigit also accepts '²'), and few enough for int() to be cheap.
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(maximum))) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}")
    return int(text)


def requested_after(text: str | None) -> RequestedOffset:
    """`after` (or Last-Event-ID): an offset, `-1` (the start) or `now`; absent is the start."""
    if text is None:
        return START
    return parse_read_offset(text.strip())


def wants_raw(query: Mapping[str, str], accept: str) -> bool:
    form = query.get("format", "json")
    if form not in ("json", "raw"):
        raise BadRequest("format must be json or raw")
    return form == "raw" or (RAW_TYPE in accept and h.JSON_CONTENT_TYPE not in accept)


# -- rendering --------------------------------------------------------------------------------


def data_json(payload: bytes, encoding: Encoding) -> bytes:
    """One message's `data` as JSON text, without re-parsing a stored JSON value."""
    if encoding is Encoding.JSON:
        return payload
    if encoding is Encoding.TEXT:
        return json.dumps(payload.decode("utf-8", "replace"), ensure_ascii=False).encode()
    return b'"' + base64.b64encode(payload) + b'"'


def json_body(
    items: Iterable[tuple[str, bytes]],
    *,
    next_offset: str,
    up_to_date: bool,
    closed: bool,
    encoding: Encoding,
    extra: Mapping[str, object] | None = None,
) -> bytes:
    """A JSON page from (offset, data as JSON text) pairs; `extra` fields go before the usual ones.
    Stored JSON values are spliced in as they are: re-parsing them would cost a page its size again."""
    messages = b",".join(b'{"offset":"' + offset.encode() + b'","data":' + data + b"}" for offset, data in items)
    tail = dict(extra or {})
    tail |= {"next_offset": next_offset, "up_to_date": up_to_date, "closed": closed, "encoding": encoding.value}
    return b'{"messages":[' + messages + b"]," + json.dumps(tail, separators=(",", ":")).encode()[1:]


def page_etag(start: str, next_offset: str, *, closed: bool, raw: bool) -> str:
    """The page's range, and its representation: JSON and raw pages of one range differ."""
    return caching.etag(start, next_offset, closed=closed)[:-1] + (':raw"' if raw else ':json"')


def page_headers(
    *,
    start: str,
    next_offset: str,
    cache_control: str,
    raw: bool,
    up_to_date: bool,
    closed: bool,
    path: str,
    query: Mapping[str, str],
) -> dict[str, str]:
    """Headers of a page from `start` to `next_offset` answering `path?query` (without Content-Type)."""
    headers = {
        h.STREAM_NEXT_OFFSET: next_offset,
        h.CACHE_CONTROL: cache_control,
        h.ETAG: page_etag(start, next_offset, closed=closed, raw=raw),
        h.VARY: h.ACCEPT,
    }
    if up_to_date:
        headers[h.STREAM_UP_TO_DATE] = "true"
    else:
        params = {k: v for k, v in query.items() if k != "after"} | {"after": next_offset}
        headers[h.LINK] = f'<{path}?{urlencode(params)}>; rel="next"'
    if closed:
        headers[h.STREAM_CLOSED] = "true"
    # Where the page starts, as an offset: a reader that asked for `-1` or `now` learns one.
    headers[h.STREAM_START_OFFSET] = start
    return headers


def not_modified_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What a 304 for a page keeps of its headers."""
    return {k: headers[k] for k in (h.ETAG, h.CACHE_CONTROL, h.VARY) if k in headers}


# -- the tail's SSE ---------------------------------------------------------------------------

#: EventSource reconnection delay (ms), jittered per response so reconnects spread out.
RETRY_MS: Final = 1000
#: The event that ends a tail at a closed stream's end.
CLOSED_EVENT: Final = "closed"


def sse_retry() -> bytes:
    return f"retry:{RETRY_MS + random.randint(0, RETRY_MS)}\n\n".encode()


def sse_message(offset: str, data: str) -> str:
    """One message as an SSE event whose id is its offset (EventSource resumes from it)."""
    return sse.format_event(data, event_id=offset)


def sse_data(payload: bytes, encoding: Encoding) -> str:
    """A message's SSE `data`: the JSON value or the text as stored, or base64."""
    if encoding is Encoding.BASE64:
        return base64.b64encode(payload).decode("ascii")
    return payload.decode("utf-8", "replace")


def sse_closed(next_offset: str) -> bytes:
    return sse.format_event(json.dumps({"next_offset": next_offset}), event=CLOSED_EVENT).encode()
