"""A stream configuration as JSON-ready fields: one encoding for manifests and for replicas.

The file engine's manifest stores these fields (plus its own version and log state), and the
replication API sends them, so a replica rebuilds exactly the configuration the origin stored.
"""

from __future__ import annotations

from typing import Any

from plugin_streams.origin.storage.base import ForkLink, StreamConfig
from plugin_streams.shared.parse import Expiry, Retention


def config_to_fields(config: StreamConfig) -> dict[str, Any]:
    fork = config.fork
    return {
        "generation": config.generation,
        "path": config.path,
        "content_type": config.content_type,
        "ttl_seconds": config.ttl_seconds,
        "expires": None if config.expires is None else [config.expires.at_ms, config.expires.text],
        "created_ms": config.created_ms,
        "soft_deleted": config.soft_deleted,
        "fork": None
        if fork is None
        else {
            "source_generation": fork.source_generation,
            "source_path": fork.source_path,
            "position": fork.position,
            "requested_offset": fork.requested_offset,
            "requested_sub_offset": fork.requested_sub_offset,
        },
        "retention": None
        if config.retention is None
        else [config.retention.max_age_seconds, config.retention.max_bytes],
        "max_size": config.max_size,
    }


def config_from_fields(data: dict[str, Any]) -> StreamConfig:
    """The inverse of config_to_fields. Raises KeyError, TypeError or ValueError on bad input."""
    fork = data["fork"]
    expires = data["expires"]
    retention = data.get("retention")
    return StreamConfig(
        generation=int(data["generation"]),
        path=str(data["path"]),
        content_type=str(data["content_type"]),
        ttl_seconds=None if data["ttl_seconds"] is None else int(data["ttl_seconds"]),
        expires=None if expires is None else Expiry(int(expires[0]), str(expires[1])),
        created_ms=int(data["created_ms"]),
        soft_deleted=bool(data["soft_deleted"]),
        retention=None if retention is None else Retention(retention[0], retention[1]),
        max_size=data.get("max_size"),
        fork=None
        if fork is None
        else ForkLink(
            source_generation=int(fork["source_generation"]),
            source_path=str(fork["source_path"]),
            position=int(fork["position"]),
            requested_offset=fork["requested_offset"],
            requested_sub_offset=int(fork["requested_sub_offset"]),
        ),
    )
