"""The replication wire formats shared by the origin (which serves them) and regional replicas.

Two feeds, both long-lived HTTP responses, both under REPLICATION_PREFIX:

- The **change feed** (`changes`): newline-delimited JSON, one line per event the origin
  publishes about itself (a stream created, closed, deleted or expired), each numbered by
  `seq` within an `epoch` (a random name for one run of the origin). A replica resumes with
  `?epoch=E&after=N`; if the origin cannot resume there (it restarted, or the events rolled out
  of its window) it says `resync` and the replica reconciles against the stream list.
  Heartbeat lines flow while nothing happens, so a replica can tell a dead link from a quiet one.

- The **log feed** (`log/<path>?generation=G&from=P`): one stream incarnation's records from
  position P on, exactly as the origin stores them, record by record, so a replica keeps the
  same bytes, the same record boundaries (hence the same chunk windows and ETags) and the same
  offsets. A frame is one header line, then (for records) the payload:

      R <start> <length> <closed 0|1> <written_ms>\\n<payload bytes>
      H <tail> <retained_from> <closed 0|1> <gone 0|1>\\n   heartbeat; sent at once when caught up

`gone` says the incarnation left its path (deleted or expired): nothing more will come.

Stream configurations travel as JSON objects (origin.replication.configs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

REPLICATION_PREFIX: Final = "/v1/replication/"
CHANGES_PATH: Final = REPLICATION_PREFIX + "changes"
STREAMS_PATH: Final = REPLICATION_PREFIX + "streams"
TOUCH_PATH: Final = REPLICATION_PREFIX + "touch"
MAX_TOUCH_PATHS: Final = 10_000  # paths in one touch report; senders split larger sets
LOG_PREFIX: Final = REPLICATION_PREFIX + "log/"
CONTENT_TYPE_NDJSON: Final = "application/x-ndjson"
CONTENT_TYPE_LOG: Final = "application/x-ds-replication-log"

# Change feed event types.
CREATED: Final = "created"
CLOSED: Final = "closed"
DELETED: Final = "deleted"  # by DELETE, by expiry, or because its last fork went
HELLO: Final = "hello"
RESYNC: Final = "resync"
HEARTBEAT: Final = "heartbeat"

MAX_FRAME_HEADER: Final = 128


@dataclass(frozen=True, slots=True)
class RecordFrame:
    start: int
    payload: bytes
    closed: bool
    written_ms: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    tail: int
    retained_from: int
    closed: bool
    gone: bool


def record_header(start: int, length: int, closed: bool, written_ms: int) -> bytes:
    return b"R %d %d %d %d\n" % (start, length, 1 if closed else 0, written_ms)


def heartbeat_frame(tail: int, retained_from: int, closed: bool, gone: bool) -> bytes:
    return b"H %d %d %d %d\n" % (tail, retained_from, 1 if closed else 0, 1 if gone else 0)


class FrameError(ValueError):
    pass


def parse_header(line: bytes) -> tuple[bytes, list[int]]:
    """The kind (b"R" or b"H") and integer fields of one frame header line."""
    parts = line.strip().split(b" ")
    kind = parts[0]
    try:
        fields = [int(p) for p in parts[1:]]
    except ValueError:
        raise FrameError(f"bad frame header {line[:64]!r}") from None
    if (kind == b"R" and len(fields) == 4) or (kind == b"H" and len(fields) == 4):
        if any(f < 0 for f in fields):
            raise FrameError(f"negative field in {line[:64]!r}")
        return kind, fields
    raise FrameError(f"bad frame header {line[:64]!r}")


class FrameParser:
    """Incremental parser of a log feed: feed it bytes as they arrive, get whole frames back."""

    def __init__(self, max_record: int) -> None:
        self._buffer = bytearray()
        self._max_record = max_record

    def feed(self, data: bytes) -> list[RecordFrame | Heartbeat]:
        self._buffer += data
        frames: list[RecordFrame | Heartbeat] = []
        buffer = self._buffer
        at = 0
        while True:
            newline = buffer.find(b"\n", at, at + MAX_FRAME_HEADER)
            if newline < 0:
                if len(buffer) - at >= MAX_FRAME_HEADER:
                    raise FrameError("frame header too long")
                break
            kind, fields = parse_header(bytes(buffer[at:newline]))
            if kind == b"H":
                frames.append(Heartbeat(fields[0], fields[1], fields[2] == 1, fields[3] == 1))
                at = newline + 1
                continue
            start, length, closed, written_ms = fields
            if length > self._max_record:
                raise FrameError(f"record of {length} bytes is larger than allowed")
            end = newline + 1 + length
            if end > len(buffer):
                break
            frames.append(RecordFrame(start, bytes(buffer[newline + 1 : end]), closed == 1, written_ms))
            at = end
        del buffer[:at]
        return frames
