"""The REST tail's hub: one upstream `GET .../:name/tail` (SSE) per stream feeds every REST SSE
client of it at this edge, through the same delivery as the protocol's hubs (edge.sse_hub).

Each message is an event whose id is its offset. The messages that arrive together become one
hub event [start, end), re-framed once (shared.rest_pages) and written to every subscriber as the
same bytes; a client subscribes at the hub's position or at the start of a recent hub event, so
it gets each message exactly once whatever offset it came from. The origin's `event: closed` ends
the hub after reaching every subscriber.

A refusal of the origin (404, 403, ...) is kept as the origin's answer, so a client that was about
to subscribe gets exactly what the origin would have told it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import CIMultiDict

from plugin_streams.edge.sse_hub import Hub
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import headers as h
from plugin_streams.shared import sse
from plugin_streams.shared.errors import ProtocolError, Unavailable
from plugin_streams.shared.rest_pages import CLOSED_EVENT, Encoding, sse_closed, sse_message


class RestHub(Hub):
    kind = "rest_sse"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.encoding = Encoding.JSON.value  # Stream-Message-Format, as the origin names it
        self.refusal: Reply | None = None  # the origin's answer when it refused the tail
        super().__init__(*args, **kwargs)

    def _query(self, offset: str) -> str:
        return f"?after={offset}"

    async def _refused(self, response: aiohttp.ClientResponse) -> ProtocolError:
        error = await super()._refused(response)
        if not isinstance(error, Unavailable):  # kept for the clients, as the origin said it
            self.refusal = Reply(response.status, CIMultiDict(response.headers), await response.read())
        return error

    def _started(self, response: aiohttp.ClientResponse) -> None:
        self.encoding = response.headers.get(h.STREAM_MESSAGE_FORMAT, self.encoding)
        if self.position is None:
            start = response.headers.get(h.STREAM_START_OFFSET)
            if start is None:
                raise ValueError("the origin's tail named no start offset")  # (retried as unavailable)
            self.position = start
            self.ready.set()

    def _feed(self, events: list[sse.Event]) -> None:
        """The messages that arrived together as one hub event; then the closure, if it came."""
        assert self.position is not None
        wire: list[str] = []
        end = self.position
        closed = False
        for event in events:
            if event.event == CLOSED_EVENT:
                closed = True
                break
            if event.id is not None:
                wire.append(sse_message(event.id, event.data))
                end = event.id
        if wire:
            self.delivery.add(self.position, end, "".join(wire).encode(), False)
            self.position = end
        if closed:
            self.delivery.add(end, end, sse_closed(end), True)
            self.closed = True
        self._published(bool(wire) or closed)


def refusal_of(hub: RestHub) -> Reply | None:
    """What to tell a client of a hub that ended before serving: the origin's refusal, if any."""
    if hub.refusal is not None:
        return hub.refusal
    if hub.error is not None:
        raise hub.error
    return None
