"""Stream lifecycle events for subscriptions, chained after whoever already listens (replication).

Through the registry's StreamEvents every way a stream comes or goes reaches the subscriptions:
creates, appends and deletes through either HTTP API or the service itself, expiry and the sweeper.
"""

from __future__ import annotations

from plugin_streams.origin.events import StreamEvents
from plugin_streams.origin.stream import StreamState
from plugin_streams.origin.subscriptions.manager import SubscriptionManager


class SubscriptionEvents:
    def __init__(self, manager: SubscriptionManager, then: StreamEvents) -> None:
        self.manager = manager
        self.then = then

    def created(self, state: StreamState) -> None:
        self.then.created(state)
        self.manager.stream_written(state.config.path)

    def appended(self, state: StreamState) -> None:
        self.then.appended(state)
        self.manager.stream_written(state.config.path)

    def closed(self, state: StreamState) -> None:
        self.then.closed(state)

    def gone(self, state: StreamState, reason: str) -> None:
        self.then.gone(state, reason)
        self.manager.stream_deleted(state.config.path)
