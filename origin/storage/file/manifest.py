"""A stream's configuration on disk: `manifest.json`, replaced atomically (temp, fsync, rename).

The manifest is the commit point of a create: a stream directory without one is an unfinished
create and recovery removes it. Its mtime carries the last access time (sliding TTL), updated
with utime so that a read never rewrites the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Final

from origin.storage.base import ForkLink, StreamConfig
from shared.parse import Expiry, Retention

MANIFEST: Final = "manifest.json"
FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class LogState:
    """Which log file holds the stream's records, and what retention already cut off."""

    file_no: int = 0
    first_record: int = 0  # records numbered below this were dropped
    first_position: int | None = None  # logical position of record `first_record` (None: base)

    @property
    def file_name(self) -> str:
        return log_file_name(self.file_no)


def log_file_name(file_no: int) -> str:
    return "log" if file_no == 0 else f"log.{file_no}"


def to_json(config: StreamConfig, log: LogState = LogState()) -> bytes:
    data: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "generation": config.generation,
        "path": config.path,
        "content_type": config.content_type,
        "ttl_seconds": config.ttl_seconds,
        "expires": None if config.expires is None else [config.expires.at_ms, config.expires.text],
        "created_ms": config.created_ms,
        "soft_deleted": config.soft_deleted,
        "fork": None,
        "retention": None
        if config.retention is None
        else [config.retention.max_age_seconds, config.retention.max_bytes],
        "max_size": config.max_size,
        "log": [log.file_no, log.first_record, log.first_position],
    }
    if config.fork is not None:
        fork = config.fork
        data["fork"] = {
            "source_generation": fork.source_generation,
            "source_path": fork.source_path,
            "position": fork.position,
            "requested_offset": fork.requested_offset,
            "requested_sub_offset": fork.requested_sub_offset,
        }
    return json.dumps(data, separators=(",", ":")).encode()


def from_json(raw: bytes) -> tuple[StreamConfig, LogState]:
    data = json.loads(raw)
    log = LogState(*data.get("log", (0, 0, None)))
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown manifest version {data.get('version')!r}")
    fork = data["fork"]
    expires = data["expires"]
    retention = data.get("retention")
    config = StreamConfig(
        generation=int(data["generation"]),
        path=str(data["path"]),
        content_type=str(data["content_type"]),
        ttl_seconds=data["ttl_seconds"],
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
    return config, log


def write_atomically(directory: str, config: StreamConfig, access_ms: int, log: LogState = LogState()) -> None:
    """Blocking: replace the manifest durably (caller runs it off the event loop).

    The new file's mtime is set to `access_ms`, the stream's last access (sliding TTL).
    """
    final = os.path.join(directory, MANIFEST)
    temp = final + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, to_json(config, log))
        os.utime(fd, ns=(access_ms * 1_000_000, access_ms * 1_000_000))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, final)
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
