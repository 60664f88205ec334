"""Snapshots: a state restored from one takes the same decisions; torn or altered bytes are refused."""

from __future__ import annotations

import pytest

from plugin_streams.origin.kv.queues import (
    CorruptEncoding,
    QueuedMessage,
    create_group,
    encode_snapshot,
    enqueue,
    lease,
    load_snapshot,
    nack,
    term,
)
from tests.origin.kv.queues.log import QueueLog


def busy_log() -> QueueLog:
    log = QueueLog()
    log.append(create_group(log.state, "a", ""))
    for number in range(6):
        log.append(enqueue(log.state, QueuedMessage(f"m{number}", b"v", number, backoff_schedule_ms=(5,))))
    log.append(create_group(log.state, "b", "m3"))
    for _ in range(3):
        record = lease(log.state, "a", "w", 10, 1_000)
        assert record is not None
        log.append(record)
    log.append(nack(log.state, "a", 1, 11, "e"))
    log.append(term(log.state, "a", 2, 11, "bad"))
    return log


def test_a_loaded_snapshot_encodes_identically_and_decides_identically() -> None:
    log = busy_log()
    data = encode_snapshot(log.state)
    restored = load_snapshot(data)
    assert encode_snapshot(restored) == data and restored.position == log.state.position
    for state in (log.state, restored):
        assert [lease(state, group, "w", 20, 1_000) for group in ("a", "b")] == [
            lease(log.state, group, "w", 20, 1_000) for group in ("a", "b")
        ]
    assert list(restored.groups["a"].dead) == ["m1"]


def test_snapshot_plus_tail_equals_live() -> None:
    log = busy_log()
    middle = encode_snapshot(log.replay())
    record = lease(log.state, "b", "w", 30, 1_000)
    assert record is not None
    log.append(record)
    assert encode_snapshot(log.replay(middle)) == log.fingerprint() == encode_snapshot(log.replay())


def test_every_flipped_byte_and_every_cut_is_refused() -> None:
    data = encode_snapshot(busy_log().state)
    for index in range(0, len(data), 7):
        altered = bytearray(data)
        altered[index] ^= 0x40
        with pytest.raises(CorruptEncoding):
            load_snapshot(bytes(altered))
    for cut in (0, 3, 10, len(data) - 1):
        with pytest.raises(CorruptEncoding):
            load_snapshot(data[:cut])
