"""Stream incarnations as JSON for replicas: the configuration plus where the log stands."""

from __future__ import annotations

from typing import Any

from plugin_streams.origin.storage.config_fields import config_to_fields
from plugin_streams.origin.stream import StreamState


def describe(state: StreamState) -> dict[str, Any]:
    """An incarnation as a replica needs it: configuration, committed tail, closure, earliest data."""
    return {
        "config": config_to_fields(state.config),
        "tail": state.tail,
        "retained_from": state.retained_from,
        "closed": state.closed,
    }
