"""The seam between the client's public classes and the two HTTP APIs it speaks.

`Streams`, `Stream` and `TailHandle` hold one `Api` and never look at URLs, status codes or
headers themselves. Two implementations sit behind it:

- `RestApi` (`plugin_streams._rest`): this project's REST API under `/streams/api/v1`: JSON
  bodies, an offset for every message, listing, retention settings.
- `ProtocolApi` (`plugin_streams._protocol`): the Durable Streams protocol of any server: PUT,
  POST, GET, HEAD and DELETE on the stream's own URL, everything else in `Stream-*` headers.

`choose_api` decides which one a URL speaks (see its docstring); `api=` overrides it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol
from urllib.parse import urlsplit

from plugin_streams._transport import base_urls

if TYPE_CHECKING:
    from plugin_streams._transport import Transport
    from plugin_streams.models import Message, Retention, StreamInfo

ApiName = Literal["rest", "protocol"]
API_NAMES: Final[tuple[ApiName, ...]] = ("rest", "protocol")
#: Where the protocol's streams live on this project's servers, Node's and Caddy's.
PROTOCOL_ROOT: Final = "/v1/stream"


def choose_api(url: str | Sequence[str], api: str | None) -> tuple[ApiName, list[str]]:
    """The API to speak and the base URL of each server (streams are addressed under it).

    Without `api`, a URL whose path ends in `/v1/stream` speaks the protocol (streams under that
    path); any other URL speaks the REST API, exactly as before (its path, if any, is where the
    REST API is mounted). `api="protocol"` with a URL that has no path puts the streams under
    `/v1/stream`; with a path, under that path, whatever it is. Every URL must speak the same API.
    """
    urls = base_urls(url, root="")
    if api is not None and api not in API_NAMES:
        raise ValueError(f"api must be one of {', '.join(API_NAMES)}, not {api!r}")
    if api is None:
        speaks = {"protocol" if urlsplit(u).path.endswith(PROTOCOL_ROOT) else "rest" for u in urls}
        if len(speaks) > 1:
            raise ValueError("these URLs speak different APIs (some end in /v1/stream): give api= explicitly")
        api = speaks.pop()
    if api == "rest":
        return "rest", urls
    return "protocol", [u if urlsplit(u).path not in ("", "/") else u + PROTOCOL_ROOT for u in urls]


@dataclass(frozen=True, slots=True)
class CreateOptions:
    content_type: str
    retention: Retention | None = None
    max_size: int | None = None
    ttl_seconds: int | None = None
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class Producer:
    """The idempotent-producer tuple of one append (the same on every attempt of it)."""

    id: str
    epoch: int
    seq: int

    def headers(self) -> dict[str, str]:
        return {"Producer-Id": self.id, "Producer-Epoch": str(self.epoch), "Producer-Seq": str(self.seq)}


@dataclass(frozen=True, slots=True)
class Appended:
    """What the server said about an append.

    `offsets`: the offset after each message (REST only). `next_offset`: the stream's tail after
    this append (after the close, for a close). `duplicate`: an earlier attempt already stored it.
    """

    offsets: list[str] | None
    next_offset: str | None
    duplicate: bool = False


class EpochFenced(Exception):
    """The server knows a newer epoch of this producer id: claim the one after `epoch`."""

    def __init__(self, epoch: int) -> None:
        super().__init__(epoch)
        self.epoch = epoch


class ProducerForgotten(Exception):
    """The server does not know this producer's sequence (the stream was re-created): new epoch."""


class TailSink(Protocol):
    """What a tail connection reports to: the handle that delivers messages and remembers where.

    `offset` is where the tail resumes (the position after the last message delivered, or a
    position the server reported with no message); `closed` ends the tail.
    """

    offset: str | None
    closed: bool

    async def deliver(self, message: Message) -> None: ...


class TailSession(Protocol):
    """The API's side of one live tail; `attempt` makes one connection and returns when it ends."""

    async def attempt(self, base: str, sink: TailSink) -> None: ...


class RetryLater(Exception):
    """A tail attempt got an answer worth retrying (5xx, 429); `error` is what it said."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Api(Protocol):
    @property
    def name(self) -> ApiName: ...

    @property
    def transport(self) -> Transport: ...

    def path(self, name: str) -> str: ...

    async def create(self, name: str, options: CreateOptions) -> StreamInfo: ...

    async def describe(self, name: str) -> StreamInfo: ...

    async def delete(self, name: str) -> None: ...

    def list(self, prefix: str, page_size: int | None) -> AsyncIterator[StreamInfo]: ...

    async def append(
        self, name: str, body: bytes, content_type: str | None, producer: Producer, *, close: bool
    ) -> Appended: ...

    def read(self, name: str, after: str | None, limit: int | None) -> AsyncIterator[Message]: ...

    def tail_session(self, name: str, mode: str, idle_timeout: float) -> TailSession: ...
