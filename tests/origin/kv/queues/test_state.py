"""QueueState.apply: the only way state changes; records that no longer fit are ignored, deterministically."""

from __future__ import annotations

import pytest

from plugin_streams.origin.kv.queues import Applied, QueuedMessage, UnknownGroup, create_group, enqueue, lease
from plugin_streams.origin.kv.queues.records import (
    Acked,
    DeadLettered,
    DeadReason,
    Enqueued,
    Extended,
    GroupCreated,
    GroupReset,
    Leased,
    LeaseExpired,
    Nacked,
    QueueRecord,
    Redriven,
    Trimmed,
)
from tests.origin.kv.queues.log import QueueLog


def leased_log() -> QueueLog:
    log = QueueLog()
    log.append(create_group(log.state, "g", ""))
    log.append(enqueue(log.state, QueuedMessage("m1", b"v", 0)))
    log.append(enqueue(log.state, QueuedMessage("m2", b"v", 0)))
    record = lease(log.state, "g", "w", 0, 5_000)
    assert record is not None and record.token == 1
    log.append(record)
    return log


@pytest.mark.parametrize(
    "record",
    [
        Enqueued(QueuedMessage("m1", b"again", 0)),  # a replayed enqueue
        Enqueued(QueuedMessage("m0", b"older", 0)),  # out of order
        GroupCreated("g", None),  # exists
        Leased("g", "m1", "w", 2, 1, 9),  # m1 is not ready
        Leased("g", "m2", "w", 1, 1, 9),  # token already used
        Leased("g", "m2", "w", 5, 2, 9),  # wrong attempt
        Leased("x", "m2", "w", 5, 1, 9),  # unknown group
        Acked("g", 7),
        Nacked("g", 7, "e", 0),
        Extended("g", 7, 0),
        LeaseExpired("g", 7, 0),
        DeadLettered("g", 1, "m2", 1, DeadReason.TERM, "", 0, b"", ()),  # token 1 holds m1, not m2
        Redriven("g", ("m1",), 0),  # not dead
        GroupReset("x", ""),
        Trimmed("m1"),  # m1 is leased
    ],
    ids=lambda record: type(record).__name__,
)
def test_a_record_that_does_not_fit_changes_nothing(record: QueueRecord) -> None:
    log = leased_log()
    before = log.fingerprint()
    assert log.state.apply(record, log.state.position or "") is Applied.IGNORED
    assert log.fingerprint() == before


def test_apply_records_the_position_and_tokens_move_past_every_applied_lease() -> None:
    log = leased_log()
    assert log.state.position == "0000000000000001_0000000000000004" and log.state.next_token == 2
    assert log.state.apply(Leased("g", "m2", "w", 40, 1, 9), "p") is Applied.APPLIED
    assert (log.state.next_token, log.state.position) == (41, "p")


def test_a_message_enqueued_before_a_group_exists_reaches_it_only_by_replay() -> None:
    log = QueueLog()
    log.append(enqueue(log.state, QueuedMessage("m1", b"v", 0)))
    log.append(create_group(log.state, "new", None))
    log.append(create_group(log.state, "all", ""))
    log.append(create_group(log.state, "from2", "m2"))
    log.append(enqueue(log.state, QueuedMessage("m2", b"v", 0)))
    ready = {name: sorted(group.ready_due) for name, group in log.state.groups.items()}
    assert ready == {"new": ["m2"], "all": ["m1", "m2"], "from2": ["m2"]}
    assert log.state.ids_from("m15") == ["m2"]
    with pytest.raises(UnknownGroup):
        log.state.group("nope")
