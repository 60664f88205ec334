"""Request parsing: header and query mappings in, frozen request values out.

Every malformed input becomes a BadRequest here, before anything is looked up or changed.
The mappings are plain `Mapping[str, str]` views (case-insensitive for headers) plus the list
of `offset` values, so this module needs no web framework.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from plugin_streams.shared import content_types
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.headers import (
    CONTENT_TYPE,
    LIVE_LONG_POLL,
    LIVE_SSE,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    PRODUCER_SEQ,
    STREAM_CLOSED,
    STREAM_EXPIRES_AT,
    STREAM_FORK_OFFSET,
    STREAM_FORK_SUB_OFFSET,
    STREAM_FORKED_FROM,
    STREAM_MAX_SIZE,
    STREAM_RETENTION_MAX_AGE,
    STREAM_RETENTION_MAX_BYTES,
    STREAM_SEQ,
    STREAM_TTL,
)
from plugin_streams.shared.offsets import START, Offset, RequestedOffset, parse_offset, parse_read_offset
from plugin_streams.shared.paths import path_from_url_path
from plugin_streams.shared.producer import MAX_SAFE_INTEGER, ProducerTuple

_NON_NEGATIVE_RE: Final = re.compile(r"\A(0|[1-9][0-9]*)\Z")
_PRODUCER_NUMBER_RE: Final = re.compile(r"\A[0-9]{1,16}\Z")
_RFC3339_RE: Final = re.compile(
    r"\A([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
)
_CURSOR_RE: Final = re.compile(r"\A[0-9]{1,18}\Z")
MAX_TTL_SECONDS: Final = MAX_SAFE_INTEGER // 1000
MAX_STREAM_SEQ_LENGTH: Final = 256
MAX_PRODUCER_ID_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class Expiry:
    """Stream-Expires-At: the instant in ms, and the text the client sent (echoed back)."""

    at_ms: int
    text: str


@dataclass(frozen=True, slots=True)
class Retention:
    """Drop a stream's oldest data once older than max_age_seconds or beyond max_bytes."""

    max_age_seconds: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ForkSpec:
    source: str
    offset: Offset | None  # None: the source's tail
    sub_offset: int


@dataclass(frozen=True, slots=True)
class CreateRequest:
    content_type: str | None  # None: default, or inherited by a fork
    ttl_seconds: int | None
    expires: Expiry | None
    closed: bool
    fork: ForkSpec | None
    retention: Retention | None = None
    max_size: int | None = None  # largest single append, in bytes (413 beyond)


@dataclass(frozen=True, slots=True)
class AppendRequest:
    content_type: str | None
    closed: bool
    stream_seq: str | None
    producer: ProducerTuple | None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    offset: RequestedOffset
    live: str | None  # None (catch-up), "long-poll" or "sse"
    cursor: int | None


def is_true(value: str | None) -> bool:
    """PROTOCOL.md §4.1: only `true`, case-insensitively, means true; anything else is absent."""
    return value is not None and value.strip().lower() == "true"


def _non_negative(name: str, value: str, limit: int) -> int:
    # The length check first: int() refuses strings of more than 4300 digits (ValueError).
    if len(value) > len(str(limit)) or not _NON_NEGATIVE_RE.match(value) or int(value) > limit:
        raise BadRequest(f"{name} must be a non-negative integer without leading zeros")
    return int(value)


def parse_expires_at(text: str) -> Expiry:
    match = _RFC3339_RE.match(text.strip())
    if match is None:
        raise BadRequest(f"{STREAM_EXPIRES_AT} must be an RFC 3339 timestamp")
    date, time, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        instant = datetime.fromisoformat(f"{date}T{time}.{micro}{zone}")
        at_ms = int(instant.astimezone(UTC).timestamp() * 1000)
    except (ValueError, OverflowError):  # OverflowError: year 9999 at -23:59 is past year 9999 in UTC
        raise BadRequest(f"{STREAM_EXPIRES_AT} is not a valid date") from None
    return Expiry(at_ms, text.strip())


def _content_type(headers: Mapping[str, str]) -> str | None:
    value = headers.get(CONTENT_TYPE)
    if value is None or value.strip() == "":
        return None
    return content_types.validate(value)


def parse_create(headers: Mapping[str, str]) -> CreateRequest:
    ttl_text = headers.get(STREAM_TTL)
    expires_text = headers.get(STREAM_EXPIRES_AT)
    if ttl_text is not None and expires_text is not None:
        raise BadRequest(f"{STREAM_TTL} and {STREAM_EXPIRES_AT} are mutually exclusive")
    ttl = _non_negative(STREAM_TTL, ttl_text, MAX_TTL_SECONDS) if ttl_text is not None else None
    expires = parse_expires_at(expires_text) if expires_text is not None else None
    return CreateRequest(
        content_type=_content_type(headers),
        ttl_seconds=ttl,
        expires=expires,
        closed=is_true(headers.get(STREAM_CLOSED)),
        fork=_parse_fork(headers),
        retention=_parse_retention(headers),
        max_size=_optional_positive(headers, STREAM_MAX_SIZE),
    )


def _optional_positive(headers: Mapping[str, str], name: str) -> int | None:
    text = headers.get(name)
    if text is None:
        return None
    value = _non_negative(name, text.strip(), MAX_SAFE_INTEGER)
    if value == 0:
        raise BadRequest(f"{name} must be greater than 0")
    return value


def _parse_retention(headers: Mapping[str, str]) -> Retention | None:
    age = _optional_positive(headers, STREAM_RETENTION_MAX_AGE)
    size = _optional_positive(headers, STREAM_RETENTION_MAX_BYTES)
    return None if age is None and size is None else Retention(age, size)


def _parse_fork(headers: Mapping[str, str]) -> ForkSpec | None:
    source = headers.get(STREAM_FORKED_FROM)
    offset_text = headers.get(STREAM_FORK_OFFSET)
    sub_text = headers.get(STREAM_FORK_SUB_OFFSET)
    if source is None:
        if offset_text is not None or sub_text is not None:
            raise BadRequest(f"fork headers require {STREAM_FORKED_FROM}")
        return None
    offset = parse_offset(offset_text.strip()) if offset_text is not None else None
    sub = _non_negative(STREAM_FORK_SUB_OFFSET, sub_text.strip(), MAX_SAFE_INTEGER) if sub_text is not None else 0
    return ForkSpec(source=path_from_url_path(source.strip()), offset=offset, sub_offset=sub)


def parse_producer(headers: Mapping[str, str]) -> ProducerTuple | None:
    values = [headers.get(name) for name in (PRODUCER_ID, PRODUCER_EPOCH, PRODUCER_SEQ)]
    if all(value is None for value in values):
        return None
    producer_id, epoch, seq = values
    if producer_id is None or epoch is None or seq is None:
        raise BadRequest("Producer-Id, Producer-Epoch and Producer-Seq must be sent together")
    if producer_id == "" or len(producer_id) > MAX_PRODUCER_ID_LENGTH:
        raise BadRequest(f"Producer-Id must be 1 to {MAX_PRODUCER_ID_LENGTH} characters")
    numbers = []
    for name, text in ((PRODUCER_EPOCH, epoch), (PRODUCER_SEQ, seq)):
        if not _PRODUCER_NUMBER_RE.match(text) or int(text) > MAX_SAFE_INTEGER:
            raise BadRequest(f"{name} must be an integer from 0 to 2^53-1")
        numbers.append(int(text))
    return ProducerTuple(producer_id, numbers[0], numbers[1])


def parse_append(headers: Mapping[str, str], *, body_empty: bool) -> AppendRequest:
    closed = is_true(headers.get(STREAM_CLOSED))
    if body_empty and not closed:
        raise BadRequest("empty body: only a close (Stream-Closed: true) may have no body")
    content_type = None if body_empty else _content_type(headers)
    if not body_empty and content_type is None:
        raise BadRequest("Content-Type is required with a body")
    stream_seq = headers.get(STREAM_SEQ)
    if stream_seq is not None and not 0 < len(stream_seq) <= MAX_STREAM_SEQ_LENGTH:
        raise BadRequest(f"{STREAM_SEQ} must be 1 to {MAX_STREAM_SEQ_LENGTH} characters")
    return AppendRequest(
        content_type=content_type,
        closed=closed,
        stream_seq=stream_seq,
        producer=parse_producer(headers),
    )


def parse_read(query: Mapping[str, str], offsets: Sequence[str]) -> ReadRequest:
    live = query.get("live")
    if live is not None and live not in (LIVE_LONG_POLL, LIVE_SSE):
        raise BadRequest(f"unknown live mode {live[:32]!r}")
    if len(offsets) > 1:
        raise BadRequest("offset given more than once")
    if not offsets:
        if live is not None:
            raise BadRequest(f"live={live} requires an offset")
        offset: RequestedOffset = START
    else:
        offset = parse_read_offset(offsets[0])
    cursor_text = query.get("cursor")
    cursor = int(cursor_text) if cursor_text and _CURSOR_RE.match(cursor_text) else None
    return ReadRequest(offset=offset, live=live, cursor=cursor)
