"""Stream incarnations as JSON for replicas: the configuration plus where the log stands."""

from __future__ import annotations

from typing import Any

from origin.storage.base import ForkLink, StreamConfig
from origin.stream import StreamState
from shared.parse import Expiry, Retention


def config_to_json(config: StreamConfig) -> dict[str, Any]:
    fork = config.fork
    return {
        "generation": config.generation,
        "path": config.path,
        "content_type": config.content_type,
        "ttl_seconds": config.ttl_seconds,
        "expires": None if config.expires is None else {"at_ms": config.expires.at_ms, "text": config.expires.text},
        "created_ms": config.created_ms,
        "fork": None
        if fork is None
        else {
            "source_generation": fork.source_generation,
            "source_path": fork.source_path,
            "position": fork.position,
            "requested_offset": fork.requested_offset,
            "requested_sub_offset": fork.requested_sub_offset,
        },
        "soft_deleted": config.soft_deleted,
        "retention": None
        if config.retention is None
        else {"max_age_seconds": config.retention.max_age_seconds, "max_bytes": config.retention.max_bytes},
        "max_size": config.max_size,
    }


def config_from_json(value: dict[str, Any]) -> StreamConfig:
    """The inverse of config_to_json. Raises KeyError, TypeError or ValueError on bad input."""
    expires = value.get("expires")
    fork = value.get("fork")
    retention = value.get("retention")
    return StreamConfig(
        generation=int(value["generation"]),
        path=str(value["path"]),
        content_type=str(value["content_type"]),
        ttl_seconds=_optional_int(value.get("ttl_seconds")),
        expires=None if expires is None else Expiry(int(expires["at_ms"]), str(expires["text"])),
        created_ms=int(value["created_ms"]),
        fork=None
        if fork is None
        else ForkLink(
            source_generation=int(fork["source_generation"]),
            source_path=str(fork["source_path"]),
            position=int(fork["position"]),
            requested_offset=fork.get("requested_offset"),
            requested_sub_offset=int(fork.get("requested_sub_offset", 0)),
        ),
        soft_deleted=bool(value.get("soft_deleted", False)),
        retention=None
        if retention is None
        else Retention(_optional_int(retention.get("max_age_seconds")), _optional_int(retention.get("max_bytes"))),
        max_size=_optional_int(value.get("max_size")),
    )


def describe(state: StreamState) -> dict[str, Any]:
    """An incarnation as a replica needs it: configuration, committed tail, closure, earliest data."""
    return {
        "config": config_to_json(state.config),
        "tail": state.tail,
        "retained_from": state.retained_from,
        "closed": state.closed,
    }


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
