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

from plugin_streams.origin.storage.base import StreamConfig, Summary
from plugin_streams.origin.storage.config_fields import config_from_fields, config_to_fields
from plugin_streams.shared.producer import ProducerState, ProducerTuple

MANIFEST: Final = "manifest.json"
#: 2: payloads in `data`, batches in `index` (file/batch_index.py); 1: framed records in `log`
#: (file/log_v1.py), upgraded at start-up (file/upgrade.py).
FORMAT_VERSION: Final = 2
LEGACY_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class LogState:
    """Which files hold the stream's records, and what retention already cut off.

    Each retention compaction writes the kept records to the next file number and commits it by
    replacing the manifest; files of any other number are leftovers and recovery removes them.
    """

    file_no: int = 0
    first_record: int = 0  # records numbered below this were dropped
    first_position: int | None = None  # logical position of record `first_record` (None: base)
    # What the dropped records said that outlives them: closure, the last Stream-Seq and the
    # producers' last (epoch, seq). Recovery starts from it, so dropping a closed stream's
    # records never reopens it and a producer's retry is still known as one.
    carried: Summary | None = None

    @property
    def data_name(self) -> str:
        return numbered("data", self.file_no)

    @property
    def index_name(self) -> str:
        return numbered("index", self.file_no)

    @property
    def legacy_name(self) -> str:
        """The one log file of format 1."""
        return numbered("log", self.file_no)


def numbered(kind: str, file_no: int) -> str:
    return kind if file_no == 0 else f"{kind}.{file_no}"


def is_record_file(name: str) -> bool:
    return name.split(".", 1)[0] in ("data", "index", "log")


def to_json(config: StreamConfig, log: LogState = LogState()) -> bytes:
    data: dict[str, Any] = {"version": FORMAT_VERSION, **config_to_fields(config)}
    data["log"] = [log.file_no, log.first_record, log.first_position]
    if log.carried is not None:
        data["log"].append(_carried_to_fields(log.carried))
    return json.dumps(data, separators=(",", ":")).encode()


def _carried_to_fields(carried: Summary) -> dict[str, Any]:
    closed_by = carried.closed_by
    return {
        "closed": carried.closed,
        "closed_by": None if closed_by is None else [closed_by.producer_id, closed_by.epoch, closed_by.seq],
        "stream_seq": carried.stream_seq,
        "producers": [[pid, state.epoch, state.last_seq] for pid, state in carried.producers.items()],
    }


def carried_over(carried: Summary | None) -> Summary:
    """A new summary starting from what dropped records left (sizes and times stay empty)."""
    summary = Summary()
    if carried is not None:
        summary.producers = carried.producers.copy()
        summary.stream_seq = carried.stream_seq
        summary.closed = carried.closed
        summary.closed_by = carried.closed_by
    return summary


def _carried_from_fields(fields: dict[str, Any]) -> Summary:
    carried = Summary()
    for pid, epoch, seq in fields["producers"]:
        carried.producers.record(str(pid), ProducerState(int(epoch), int(seq)))
    carried.stream_seq = fields["stream_seq"]
    carried.closed = bool(fields["closed"])
    closed_by = fields["closed_by"]
    carried.closed_by = (
        None if closed_by is None else ProducerTuple(str(closed_by[0]), int(closed_by[1]), int(closed_by[2]))
    )
    return carried


@dataclass(frozen=True, slots=True)
class Manifest:
    config: StreamConfig
    log: LogState
    version: int


def from_json(raw: bytes) -> Manifest:
    data = json.loads(raw)
    file_no, first_record, first_position, *carried = data.get("log", (0, 0, None))
    log = LogState(file_no, first_record, first_position, _carried_from_fields(carried[0]) if carried else None)
    version = data.get("version")
    if version not in (FORMAT_VERSION, LEGACY_VERSION):
        raise ValueError(f"unknown manifest version {version!r}")
    return Manifest(config_from_fields(data), log, version)


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
