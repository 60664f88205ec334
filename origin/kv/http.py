"""What the KV HTTP API reads from requests and writes in answers: JSON bodies and query keys,
entries and commit receipts. Errors are 4xx naming what is wrong; nothing here changes state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from plugin_streams.origin.kv.database import KvDatabase, Written
from plugin_streams.origin.kv.index import Entry
from plugin_streams.shared import caching, jsonmode
from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.keys import decode_key, encode_key, key_from_wire, key_to_wire
from plugin_streams.shared.kv.values import Json, decode_value, value_to_wire
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset

#: A database never written has no log position yet; its reads say so with the protocol's "start".
NO_OFFSET: Final = h.OFFSET_START
#: The largest KV request body: an 800 KiB commit in JSON (bytes as base64, escaped strings, keys
#: repeated in checks) fits well under it, and nothing bigger is read or parsed.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024


def _reject_constant(name: str) -> Json:
    raise ValueError(f"{name} is not valid JSON")


async def json_value(request: web.Request) -> Json:
    """The request's JSON value, read up to MAX_BODY_BYTES; a big body is parsed off the event loop."""
    body = await _read_body(request)
    try:
        if len(body) > jsonmode.INLINE_BYTES:
            return await asyncio.get_running_loop().run_in_executor(None, _loads, body)
        return _loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {str(exc)[:80]}") from None


async def json_body(request: web.Request) -> Mapping[str, Json]:
    """The request's JSON object."""
    parsed = await json_value(request)
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object")
    return parsed


async def _read_body(request: web.Request) -> bytes:
    """The body, refused (413) as soon as it passes MAX_BODY_BYTES, whatever its Content-Length says."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a KV request body is at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a KV request body is at most {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _loads(body: bytes) -> Json:
    value: Json = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    return value


def query_key(request: web.Request, name: str = "key") -> bytes | None:
    """An encoded key from a query parameter holding its JSON wire form; None when absent."""
    text = request.query.get(name)
    if text is None:
        return None
    try:
        wire = _loads(text.encode())
    except (ValueError, UnicodeEncodeError, RecursionError):
        raise BadRequest(f"query parameter {name} must be a key as a JSON array") from None
    return encode_key(key_from_wire(wire))


def query_int(request: web.Request, name: str, default: int | None, *, high: int = 1000) -> Any:
    """A positive integer query parameter in [1, high], or `default` when absent."""
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer in [1, {high}]")
    return int(text)


def required_key(request: web.Request) -> bytes:
    key = query_key(request)
    if key is None:
        raise BadRequest("query parameter key (a JSON array) is required")
    return key


def offset_text(offset: Offset | None) -> str:
    return NO_OFFSET if offset is None else str(offset)


def entry_wire(key: bytes, entry: Entry | None) -> dict[str, Json]:
    return {
        "key": key_to_wire(decode_key(key)),  # type: ignore[dict-item]
        "value": None if entry is None else value_to_wire(decode_value(entry.value)),
        "versionstamp": None if entry is None else str(entry.versionstamp),
    }


def receipt(db: KvDatabase, written: Written[Any], **extra: Json) -> dict[str, Json]:
    """`ok` with the commit's versionstamp and offset (the database's latest when nothing was logged)."""
    offset = written.event.offset if written.event is not None else db.offset
    stamp = None if offset is None else str(Versionstamp.from_offset(offset))
    return {"ok": True, "versionstamp": stamp, "offset": offset_text(offset), **extra}


def answer(body: Json, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=jsonmode.compact(body),
        content_type="application/json",
        headers={h.CACHE_CONTROL: caching.NO_STORE},
    )


def field_int(body: Mapping[str, Json], name: str, default: int | None, low: int, high: int) -> int | None:
    """An optional integer field; JSON null counts as absent (the default), as clients send it for "unset"."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer in [{low}, {high}]")
    return value


def field_text(body: Mapping[str, Json], name: str, default: str | None = None) -> str | None:
    """An optional string field; JSON null counts as absent (the default)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value
