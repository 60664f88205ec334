"""Streams: the async client's entry point (create, describe, list, delete, stream handles).

    async with Streams("http://127.0.0.1:4437", token="...") as streams:
        stream = await streams.create("user-events")
        offset = await stream.append({"user": 1})
        async for message in stream.read(after=saved):
            ...

Two APIs, one client. `Streams("http://host:4437")` speaks this project's REST API
(`/streams/api/v1/streams`). A URL whose path ends in `/v1/stream`, such as
`Streams("http://host:4437/v1/stream")`, or `api="protocol"` with any URL, speaks the Durable
Streams protocol, which any conforming server (this project's origin and edge, the Node
reference server, Caddy...) answers; streams are addressed under the URL's path (`/v1/stream`
when it has none). In protocol mode `list()` raises NotSupported, `create()` takes no retention
or max_size, and the messages of a JSON read have positions rather than server offsets except
the last of each response (see `plugin_streams.models.Message`).

`url` may be a list (or a comma-separated string) of servers, such as several edges: requests
move to the next one when one fails. Every request is retried for `retry_for` seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType

from plugin_streams._api import Api, CreateOptions, choose_api
from plugin_streams._kv_http import KvConnection
from plugin_streams._protocol import ProtocolApi
from plugin_streams._rest import RestApi
from plugin_streams._transport import API_PREFIX, Transport
from plugin_streams.errors import NotFound
from plugin_streams.kv import Kv
from plugin_streams.models import Retention, StreamInfo
from plugin_streams.stream import Stream


def _open_api(url: str | Sequence[str], token: str | None, api: str | None, **options: float) -> Api:
    name, bases = choose_api(url, api)
    if name == "rest":
        return RestApi(Transport(bases, token, root=API_PREFIX, **options))
    return ProtocolApi(Transport(bases, token, root="", **options))


class Streams:
    def __init__(
        self,
        url: str | Sequence[str],
        token: str | None = None,
        *,
        api: str | None = None,
        retry_for: float = 30.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.api = _open_api(
            url, token, api, retry_for=retry_for, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self.transport = self.api.transport
        self._kv_connection: KvConnection | None = None

    @property
    def api_name(self) -> str:
        """ "rest" or "protocol": the API this client speaks."""
        return self.api.name

    async def __aenter__(self) -> Streams:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the HTTP connections (streams themselves are untouched)."""
        await self.transport.close()
        if self._kv_connection is not None:
            await self._kv_connection.close()

    def kv(self, db: str) -> Kv:
        """The KV store `db` of this server (no request is made); see `plugin_streams.kv`.

        Its API is at the server's root + `/kv/api/v1/{db}` and its change stream at root +
        `/v1/stream/__kv/{db}`, whichever of the two APIs this client was given the URL of.
        """
        if self._kv_connection is None:
            self._kv_connection = KvConnection(self.transport)
        return Kv(self._kv_connection, db)

    def stream(self, name: str, *, producer_id: str | None = None, epoch: int | None = None) -> Stream:
        """A handle on stream `name` (no request is made)."""
        return Stream(self.api, name, producer_id=producer_id, epoch=epoch)

    async def create(
        self,
        name: str,
        content_type: str = "application/json",
        *,
        retention: Retention | dict[str, int | None] | None = None,
        max_size: int | None = None,
        ttl_seconds: int | None = None,
        expires_at: str | None = None,
        producer_id: str | None = None,
    ) -> Stream:
        """Create `name`, or confirm it exists with these settings; raises Conflict otherwise."""
        if isinstance(retention, dict):
            retention = Retention(retention.get("max_age_seconds"), retention.get("max_bytes"))
        options = CreateOptions(content_type, retention, max_size, ttl_seconds, expires_at)
        info = await self.api.create(name, options)
        return Stream(self.api, name, producer_id=producer_id, info=info)

    async def get(self, name: str) -> StreamInfo:
        """The description of `name` (protocol: its HEAD); raises NotFound."""
        return await self.api.describe(name)

    async def delete(self, name: str) -> None:
        """Delete `name`; raises NotFound (unless an earlier attempt of this call deleted it)."""
        await self.api.delete(name)

    def list(self, prefix: str = "", *, page_size: int | None = None) -> AsyncIterator[StreamInfo]:
        """Every stream whose name starts with `prefix`, in name order, paging automatically.

        REST only: the protocol cannot list streams (iterating raises NotSupported).
        """
        return self.api.list(prefix, page_size)

    async def exists(self, name: str) -> bool:
        try:
            await self.get(name)
        except NotFound:
            return False
        return True
