"""Every rule of the queue's decisions, through a log (encode, append, decode, apply)."""

from __future__ import annotations

import pytest

from plugin_streams.origin.kv.queues import (
    Applied,
    DeadLettered,
    DeadReason,
    GroupExists,
    QueuedMessage,
    QueueInputError,
    ReplayTrimmed,
    StaleLease,
    UnknownGroup,
    ack,
    create_group,
    enqueue,
    expire,
    extend,
    lease,
    nack,
    redrive,
    reset,
    term,
    trim,
)
from plugin_streams.origin.kv.queues.records import Acked, Enqueued, Leased, LeaseExpired, Nacked, Trimmed
from tests.origin.kv.queues.log import QueueLog

LEASE_MS = 10_000


def message(number: int, **options: object) -> QueuedMessage:
    return QueuedMessage(f"m{number:04d}", f"value {number}".encode(), 0, **options)  # type: ignore[arg-type]


def queue_with(*messages: QueuedMessage, group: str = "g") -> QueueLog:
    log = QueueLog()
    log.append(create_group(log.state, group, ""))
    for item in messages:
        log.append(enqueue(log.state, item))
    return log


def take(log: QueueLog, now_ms: int = 0, worker: str = "w1", group: str = "g") -> Leased:
    record = lease(log.state, group, worker, now_ms, LEASE_MS)
    assert record is not None
    log.append(record)
    return record


def test_leases_go_out_by_due_time_then_id() -> None:
    log = queue_with(message(1, delay_ms=500), message(2), message(3))
    assert [take(log, now_ms=1_000).message_id for _ in range(3)] == ["m0002", "m0003", "m0001"]


def test_a_delayed_message_is_not_leased_before_it_is_due() -> None:
    log = queue_with(message(1, delay_ms=500))
    assert lease(log.state, "g", "w", 499, LEASE_MS) is None
    assert take(log, now_ms=500).message_id == "m0001"


def test_tokens_rise_and_attempts_count_each_hand_out() -> None:
    log = queue_with(message(1), message(2))
    first, second = take(log), take(log)
    assert (first.token, first.attempt, second.token) == (1, 1, 2)
    log.append(nack(log.state, "g", first.token, 1, "boom", delay_ms=0))
    again = take(log, now_ms=1)
    assert (again.message_id, again.attempt, again.token) == ("m0001", 2, 3)


def test_ack_finishes_the_message_and_its_token_is_then_stale() -> None:
    log = queue_with(message(1))
    held = take(log)
    log.append(ack(log.state, "g", held.token, 1))
    assert lease(log.state, "g", "w", 10**9, LEASE_MS) is None
    with pytest.raises(StaleLease):
        ack(log.state, "g", held.token, 2)


def test_an_expired_lease_cannot_be_answered_even_before_the_sweep() -> None:
    log = queue_with(message(1))
    held = take(log)
    for answer in (
        lambda: ack(log.state, "g", held.token, LEASE_MS),
        lambda: nack(log.state, "g", held.token, LEASE_MS, "late"),
        lambda: extend(log.state, "g", held.token, LEASE_MS, LEASE_MS),
        lambda: term(log.state, "g", held.token, LEASE_MS, "late"),
    ):
        with pytest.raises(StaleLease):
            answer()


def test_a_stale_workers_ack_is_refused_after_the_message_is_re_leased() -> None:
    """The host platform's bug: an unfenced ack from a worker whose lease expired."""
    log = queue_with(message(1, backoff_schedule_ms=(0,)))
    stale = take(log, worker="slow")
    log.append_all(list(expire(log.state, "g", LEASE_MS)))
    fresh = take(log, now_ms=LEASE_MS, worker="fast")
    with pytest.raises(StaleLease):
        ack(log.state, "g", stale.token, LEASE_MS + 1)
    before = log.fingerprint()
    # Even a stale record that slipped into the log changes nothing.
    assert log.state.apply(Acked("g", stale.token), log.state.position or "") is Applied.IGNORED
    assert log.fingerprint() == before and log.state.groups["g"].lease_of["m0001"] == fresh.token
    log.append(ack(log.state, "g", fresh.token, LEASE_MS + 1))
    assert log.state.groups["g"].acked == 1


def test_nack_waits_the_message_backoff_or_the_given_delay() -> None:
    log = queue_with(message(1, backoff_schedule_ms=(300, 700, 900)))
    held = take(log)
    record = nack(log.state, "g", held.token, 100, "e1")
    assert record == Nacked("g", held.token, "e1", 400)
    log.append(record)
    assert lease(log.state, "g", "w", 399, LEASE_MS) is None
    held = take(log, now_ms=400)
    assert nack(log.state, "g", held.token, 500, "e2") == Nacked("g", held.token, "e2", 1_200)
    assert nack(log.state, "g", held.token, 500, "e2", delay_ms=5) == Nacked("g", held.token, "e2", 505)


def test_the_default_schedule_is_denos() -> None:
    log = queue_with(message(1))
    delays = []
    for attempt in range(1, 6):
        held = take(log, now_ms=10**8 * attempt)
        record = nack(log.state, "g", held.token, held.expires_ms - 1, "e")
        assert isinstance(record, Nacked)
        delays.append(record.retry_at_ms - (held.expires_ms - 1))
        log.append(record)
    assert delays == [100, 1_000, 5_000, 30_000, 60_000]
    held = take(log, now_ms=10**9)
    assert held.attempt == 6 and isinstance(nack(log.state, "g", held.token, 10**9, "e"), DeadLettered)


def test_the_last_nack_dead_letters_in_one_record_with_offset_attempts_error_and_keys() -> None:
    log = queue_with(message(1, backoff_schedule_ms=(0,), keys_if_undelivered=(b"k1", b"k2")))
    log.append(nack(log.state, "g", take(log).token, 1, "first"))
    held = take(log, now_ms=1)
    record = nack(log.state, "g", held.token, 2, "second")
    assert record == DeadLettered(
        "g", held.token, "m0001", 2, DeadReason.ATTEMPTS_EXHAUSTED, "second", 2, b"value 1", (b"k1", b"k2")
    )
    log.append(record)
    group = log.state.groups["g"]
    assert list(group.dead) == ["m0001"] and not group.leases and not group.ready_due


def test_term_dead_letters_at_once_whatever_attempts_remain() -> None:
    log = queue_with(message(1))
    held = take(log)
    record = term(log.state, "g", held.token, 5, "unparseable")
    assert (record.reason, record.attempts, record.last_error) == (DeadReason.TERM, 1, "unparseable")
    log.append(record)
    assert log.state.groups["g"].dead["m0001"].reason is DeadReason.TERM


def test_extend_moves_the_deadline_and_the_sweep_respects_it() -> None:
    log = queue_with(message(1))
    held = take(log)
    log.append(extend(log.state, "g", held.token, 9_000, LEASE_MS))
    assert expire(log.state, "g", LEASE_MS) == []
    assert [type(r) for r in expire(log.state, "g", 19_000)] == [LeaseExpired]
    log.append(ack(log.state, "g", held.token, 18_999))


def test_a_poison_message_that_kills_every_worker_is_dead_lettered_by_expiry() -> None:
    """The host platform's bug: lease expiry never dead-lettered, so such a message looped forever."""
    log = queue_with(message(1, backoff_schedule_ms=(50, 50)), message(2))
    now = 0
    handed_out = 0
    while "m0001" not in log.state.groups["g"].dead:
        record = lease(log.state, "g", "doomed", now, LEASE_MS)
        if record is not None and record.message_id == "m0001":
            log.append(record)
            handed_out += 1
        elif record is not None:
            log.append(record)
            log.append(ack(log.state, "g", record.token, now))
        now += LEASE_MS
        log.append_all(list(expire(log.state, "g", now)))
    entry = log.state.groups["g"].dead["m0001"]
    assert handed_out == 3 and entry.attempts == 3 and entry.last_error == "lease expired"
    assert entry.reason is DeadReason.ATTEMPTS_EXHAUSTED


def test_expiry_with_retries_left_redelivers_after_the_backoff() -> None:
    log = queue_with(message(1, backoff_schedule_ms=(250,)))
    take(log)
    records = expire(log.state, "g", LEASE_MS + 5)
    assert records == [LeaseExpired("g", 1, LEASE_MS + 255)]
    log.append_all(list(records))
    assert lease(log.state, "g", "w", LEASE_MS + 254, LEASE_MS) is None
    assert take(log, now_ms=LEASE_MS + 255).attempt == 2


def test_the_sweep_lists_every_expired_lease_in_deadline_order() -> None:
    log = queue_with(*(message(n) for n in range(1, 6)))
    for n in range(5):
        take(log, now_ms=n * 10)
    log.append(ack(log.state, "g", 2, 15))
    tokens = [record.token for record in expire(log.state, "g", LEASE_MS + 30)]
    assert tokens == [1, 3, 4]


def test_redrive_gives_dead_letters_a_fresh_attempt_budget() -> None:
    log = queue_with(message(1, backoff_schedule_ms=()))
    log.append(nack(log.state, "g", take(log).token, 1, "e"))
    assert "m0001" in log.state.groups["g"].dead
    log.append(redrive(log.state, "g", None, 2))
    again = take(log, now_ms=2)
    assert again.attempt == 1 and not log.state.groups["g"].dead
    with pytest.raises(QueueInputError, match="not in the dead-letter queue"):
        redrive(log.state, "g", ("m0001",), 3)
    with pytest.raises(QueueInputError, match="nothing to redrive"):
        redrive(log.state, "g", None, 3)


def test_reset_replays_from_an_offset_and_fences_outstanding_leases() -> None:
    log = queue_with(message(1), message(2), message(3))
    first = take(log)
    log.append(ack(log.state, "g", first.token, 1))
    held = take(log)
    log.append(reset(log.state, "g", "m0002"))
    with pytest.raises(StaleLease):
        ack(log.state, "g", held.token, 2)
    assert [take(log, now_ms=3).message_id for _ in range(2)] == ["m0002", "m0003"]
    log.append(reset(log.state, "g", ""))
    assert sorted(log.state.groups["g"].ready_due) == ["m0001", "m0002", "m0003"]


def test_reset_drops_dead_letters_being_replayed_and_keeps_older_ones() -> None:
    log = queue_with(message(1, backoff_schedule_ms=()), message(2, backoff_schedule_ms=()))
    for _ in range(2):
        log.append(term(log.state, "g", take(log).token, 1, "bad"))
    log.append(reset(log.state, "g", "m0002"))
    group = log.state.groups["g"]
    assert list(group.dead) == ["m0001"] and list(group.ready_due) == ["m0002"]


def test_groups_are_independent_and_can_start_from_now() -> None:
    log = queue_with(message(1))
    log.append(create_group(log.state, "late", None))
    log.append(enqueue(log.state, message(2)))
    assert take(log, group="late").message_id == "m0002"
    assert take(log).message_id == "m0001"
    with pytest.raises(GroupExists):
        create_group(log.state, "late", None)
    with pytest.raises(UnknownGroup):
        lease(log.state, "nope", "w", 0, LEASE_MS)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: lease(s, "g", "", 0, LEASE_MS), "worker name"),
        (lambda s: lease(s, "g", "w", 0, 999), "a lease must last"),
        (lambda s: lease(s, "g", "w", 0, 600_001), "a lease must last"),
        (lambda s: nack(s, "g", 1, 0, "e", delay_ms=-1), "nack delay"),
        (lambda s: nack(s, "g", 1, 0, "e" * 4_097), "error text"),
        (lambda s: create_group(s, "", None), "group name"),
        (lambda s: enqueue(s, message(0)), "does not sort after"),
        (lambda s: redrive(s, "g", tuple(f"m{n}" for n in range(1_001)), 0), "at most 1000"),
    ],
)
def test_bad_arguments_are_refused_with_a_400_naming_the_limit(call: object, match: str) -> None:
    log = queue_with(message(1))
    before = log.fingerprint()
    with pytest.raises(QueueInputError, match=match) as refused:
        call(log.state)  # type: ignore[operator]
    assert refused.value.status == 400 and log.fingerprint() == before


def test_stale_and_unknown_refusals_carry_their_status() -> None:
    log = queue_with(message(1))
    with pytest.raises(StaleLease) as stale:
        ack(log.state, "g", 99, 0)
    assert (stale.value.status, stale.value.code) == (409, "FENCED")
    with pytest.raises(UnknownGroup) as unknown:
        ack(log.state, "other", 1, 0)
    assert unknown.value.status == 404


def test_trim_drops_only_messages_no_group_needs_and_then_refuses_replays_before_them() -> None:
    log = queue_with(*(message(n, backoff_schedule_ms=()) for n in range(1, 6)))
    log.append(create_group(log.state, "h", "m0004"))
    assert trim(log.state) is None  # group g owes every message an outcome
    for answer in ("ack", "term", "ack"):
        held = take(log)
        log.append(ack(log.state, "g", held.token, 1) if answer == "ack" else term(log.state, "g", held.token, 1, "x"))
    assert trim(log.state, up_to="m0000z") is None  # bounded by the stream's retention
    record = trim(log.state)
    assert record == Trimmed("m0001")  # m0002 is a dead letter of g: a redrive needs it
    log.append(record)
    assert list(log.state.messages) == ["m0002", "m0003", "m0004", "m0005"]
    with pytest.raises(ReplayTrimmed) as refused:
        reset(log.state, "g", "m0001")
    assert refused.value.status == 410
    with pytest.raises(ReplayTrimmed):
        create_group(log.state, "late", "")
    log.append(redrive(log.state, "g", None, 2))
    for _ in range(3):  # m0004 and m0005 (due at 0) come out before the redriven m0002 (ready at 2)
        log.append(ack(log.state, "g", take(log, now_ms=2).token, 2))
    assert trim(log.state) == Trimmed("m0003")  # group h still owes m0004 and m0005
    log.append(reset(log.state, "g", "m0002"))
    assert sorted(log.state.groups["g"].ready_due) == ["m0002", "m0003", "m0004", "m0005"]


def test_a_replayed_enqueue_stays_a_no_op_after_everything_was_trimmed() -> None:
    log = queue_with(message(1))
    log.append(ack(log.state, "g", take(log).token, 1))
    log.append_all([trim(log.state)])  # type: ignore[list-item]
    assert not log.state.messages and trim(log.state) is None
    assert log.state.apply(Enqueued(message(1)), "p") is Applied.IGNORED
    with pytest.raises(QueueInputError):
        enqueue(log.state, message(1))
