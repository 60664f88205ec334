"""The Durable Streams protocol (PROTOCOL.md) of any server, behind the client's `Api` seam.

A stream is a URL under the base (`<base>/<name>`, slashes kept): PUT creates it, POST appends
(with the idempotent-producer headers; `Stream-Closed: true` closes), GET `?offset=` reads from
an offset, HEAD describes, DELETE deletes. Offsets and state travel in `Stream-*` headers.

What the protocol does not have: listing streams (`list()` raises NotSupported), retention and
`max_size` (create raises NotSupported when given them) and a read size (`limit` is ignored: the
server chooses how much one response holds). Message offsets of JSON streams: see `_positions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from plugin_streams._api import Appended, CreateOptions, EpochFenced, Producer, ProducerForgotten, TailSession
from plugin_streams._positions import split
from plugin_streams._protocol_tail import ProtocolTail
from plugin_streams._protocol_wire import (
    CLOSED,
    EXPIRES_AT,
    NEXT_OFFSET,
    PRODUCER_EPOCH,
    PRODUCER_EXPECTED_SEQ,
    TTL,
    UP_TO_DATE,
    content_kind,
    flag,
    messages,
    protocol_error,
    required,
    stream_info,
)
from plugin_streams.errors import NotSupported
from plugin_streams.models import Message, StreamInfo

if TYPE_CHECKING:
    from plugin_streams._transport import Response, Transport

NAME: Final = "protocol"


def protocol_path(name: str) -> str:
    # The name's slashes stay slashes: the protocol addresses `a/b` as <base>/a/b.
    return "/" + quote(name, safe="/")


async def _unsupported(error: NotSupported) -> AsyncIterator[StreamInfo]:
    raise error
    yield  # pragma: no cover (makes this an async generator, raising when iterated like list())


class ProtocolApi:
    name: Final = NAME

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def path(self, name: str) -> str:
        return protocol_path(name)

    def _error(self, response: Response, name: str) -> Exception:
        return protocol_error(response.status, response.headers, response.body, name)

    async def create(self, name: str, options: CreateOptions) -> StreamInfo:
        if options.retention is not None or options.max_size is not None:
            raise NotSupported(
                "retention and max_size are settings of the plugin-streams REST API; "
                "the Durable Streams protocol has neither"
            )
        headers = {"Content-Type": options.content_type}
        if options.ttl_seconds is not None:
            headers[TTL] = str(options.ttl_seconds)
        if options.expires_at is not None:
            headers[EXPIRES_AT] = options.expires_at
        response = await self.transport.request("PUT", protocol_path(name), headers=headers)
        if response.status not in (200, 201):
            raise self._error(response, name)
        info = stream_info(name, response.headers)
        # The create's answer need not echo TTL or expiry: what was asked for is what was accepted.
        return replace(
            info,
            ttl_seconds=info.ttl_seconds if info.ttl_seconds is not None else options.ttl_seconds,
            expires_at=info.expires_at or options.expires_at,
        )

    async def describe(self, name: str) -> StreamInfo:
        response = await self.transport.request("HEAD", protocol_path(name))
        if response.status != 200:
            raise self._error(response, name)
        return stream_info(name, response.headers)

    async def delete(self, name: str) -> None:
        response = await self.transport.request("DELETE", protocol_path(name))
        if response.status == 404 and response.attempts > 1:
            return  # a retried delete: an attempt that failed in flight did it
        if response.status >= 300:
            raise self._error(response, name)

    def list(self, prefix: str, page_size: int | None) -> AsyncIterator[StreamInfo]:
        return _unsupported(
            NotSupported(
                "listing streams is not part of the Durable Streams protocol; "
                "use the plugin-streams REST API (api='rest') to list them"
            )
        )

    async def append(
        self, name: str, body: bytes, content_type: str | None, producer: Producer, *, close: bool
    ) -> Appended:
        headers = producer.headers()
        if body and content_type is not None:
            headers["Content-Type"] = content_type
        if close:
            headers[CLOSED] = "true"
        response = await self.transport.request("POST", protocol_path(name), headers=headers, data=body)
        if response.status in (200, 204):
            # With producer headers a new append is 200; 204 is a duplicate (or a close-only POST).
            duplicate = response.status == 204 and bool(body)
            return Appended(None, response.headers.get(NEXT_OFFSET), duplicate=duplicate)
        epoch = response.headers.get(PRODUCER_EPOCH, "")
        if response.status == 403 and epoch.isdigit():
            raise EpochFenced(int(epoch))
        if response.status == 409 and PRODUCER_EXPECTED_SEQ in response.headers:
            raise ProducerForgotten
        raise self._error(response, name)

    async def read(self, name: str, after: str | None, limit: int | None) -> AsyncIterator[Message]:
        offset, skip = split(after)
        while True:
            response = await self.transport.request("GET", protocol_path(name), params={"offset": offset})
            if response.status != 200:
                raise self._error(response, name)
            end = required(response.headers, NEXT_OFFSET)
            kind = content_kind(response.headers.get("Content-Type", ""))
            for message in messages(kind, offset, skip, response.body, end):
                yield message
            if flag(response.headers, UP_TO_DATE) or flag(response.headers, CLOSED) or end == offset:
                return
            offset, skip = end, 0

    def tail_session(self, name: str, mode: str, idle_timeout: float) -> TailSession:
        return ProtocolTail(self.transport, protocol_path(name), name, mode, idle_timeout)
