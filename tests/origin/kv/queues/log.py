"""A queue's log for the tests: decisions' records are encoded, appended, decoded and applied, as the server will.

Every record goes through `encode_record`/`decode_record` on its way, so each test also checks the
codec, and `replay` rebuilds the state from the bytes alone (or from a snapshot and the tail).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plugin_streams.origin.kv.queues import (
    Applied,
    QueueRecord,
    QueueState,
    decode_record,
    encode_record,
    encode_snapshot,
    load_snapshot,
)


def position(index: int) -> str:
    return f"{1:016d}_{index:016d}"


@dataclass
class QueueLog:
    state: QueueState = field(default_factory=QueueState)
    records: list[bytes] = field(default_factory=list)

    def append(self, record: QueueRecord) -> Applied:
        data = encode_record(record)
        self.records.append(data)
        return self.state.apply(decode_record(data), position(len(self.records)))

    def append_all(self, records: list[QueueRecord]) -> None:
        for record in records:
            assert self.append(record) is Applied.APPLIED

    def replay(self, snapshot: bytes | None = None) -> QueueState:
        """The state rebuilt from the log's bytes: from scratch, or from `snapshot` plus the records after it."""
        state = QueueState() if snapshot is None else load_snapshot(snapshot)
        start = 0 if state.position is None else int(state.position.split("_")[1])
        for index in range(start, len(self.records)):
            state.apply(decode_record(self.records[index]), position(index + 1))
        return state

    def crash(self, snapshot: bytes | None = None) -> None:
        """Lose the live state, as a SIGKILL would, and carry on from the rebuilt one."""
        self.state = self.replay(snapshot)

    def fingerprint(self) -> bytes:
        return encode_snapshot(self.state)

    def replay_fingerprint(self) -> bytes:
        return encode_snapshot(self.replay())
