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

from plugin_streams.origin.storage.base import StreamConfig
from plugin_streams.origin.storage.config_fields import config_from_fields, config_to_fields

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
    data: dict[str, Any] = {"version": FORMAT_VERSION, **config_to_fields(config)}
    data["log"] = [log.file_no, log.first_record, log.first_position]
    return json.dumps(data, separators=(",", ":")).encode()


def from_json(raw: bytes) -> tuple[StreamConfig, LogState]:
    data = json.loads(raw)
    log = LogState(*data.get("log", (0, 0, None)))
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown manifest version {data.get('version')!r}")
    return config_from_fields(data), log


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
