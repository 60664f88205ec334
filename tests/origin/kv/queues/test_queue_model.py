"""Property tests: random interleavings of every queue operation and of crashes, against a simple model.

A crash throws the live state away and rebuilds it from the log's bytes, from scratch or from a
snapshot taken earlier plus the records after it. Whatever the interleaving:
- every message ends acked exactly once, or in the DLQ after exactly its max attempts handed out
  (or after `term`), never both, and none is lost (a reset starts the count again for the
  messages it replays, and leaves the older ones it passes over alone);
- a stale token is refused and changes nothing;
- the state rebuilt by replay is the live state (same canonical snapshot bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from plugin_streams.origin.kv.queues import (
    DeadLettered,
    DeadReason,
    QueuedMessage,
    QueueRecord,
    ReplayTrimmed,
    StaleLease,
    ack,
    create_group,
    decode_record,
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
from plugin_streams.origin.kv.queues.records import (
    Acked,
    Extended,
    GroupReset,
    Leased,
    LeaseExpired,
    Nacked,
    Redriven,
)
from tests.origin.kv.queues.log import QueueLog

GROUP = "g"


@dataclass
class Expected:
    """What the model knows of one message."""

    max_attempts: int
    status: str = "ready"  # ready, leased, acked, dead, or skipped (left behind by a reset past it)
    handed_out: int = 0  # since it was enqueued or last redriven
    acks: int = 0
    token: int | None = None
    expires_ms: int = 0


@dataclass
class Run:
    log: QueueLog = field(default_factory=QueueLog)
    model: dict[str, Expected] = field(default_factory=dict)
    issued: list[int] = field(default_factory=list)
    owner: dict[int, str] = field(default_factory=dict)
    snapshots: list[bytes] = field(default_factory=list)
    now: int = 0
    acks: int = 0  # every ack, replays included

    def live(self, token: int) -> bool:
        expected = self.model[self.owner[token]]
        return expected.token == token and expected.status == "leased" and self.now < expected.expires_ms

    def record(self, record: QueueRecord) -> None:
        """Check a decided record against the model, then append and apply it."""
        check = _CHECKS[type(record)]
        check(self, record)
        self.log.append_all([record])


def _check_leased(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, Leased)
    expected = run.model[record.message_id]
    assert expected.status == "ready" and record.attempt == expected.handed_out + 1
    assert not run.issued or record.token > max(run.issued)
    expected.status, expected.handed_out, expected.token = "leased", record.attempt, record.token
    expected.expires_ms = record.expires_ms
    run.issued.append(record.token)
    run.owner[record.token] = record.message_id


def _check_acked(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, Acked) and run.live(record.token)
    expected = run.model[run.owner[record.token]]
    expected.status, expected.acks = "acked", expected.acks + 1
    run.acks += 1


def _check_retry(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, Nacked | LeaseExpired)
    expected = run.model[run.owner[record.token]]
    assert expected.token == record.token and expected.status == "leased"
    assert expected.handed_out < expected.max_attempts
    expected.status = "ready"


def _check_extended(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, Extended) and run.live(record.token)
    run.model[run.owner[record.token]].expires_ms = record.expires_ms


def _check_dead(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, DeadLettered)
    expected = run.model[record.message_id]
    assert expected.token == record.token and expected.status == "leased"
    assert record.attempts == expected.handed_out
    assert record.reason is DeadReason.TERM or record.attempts == expected.max_attempts
    expected.status = "dead"


def _check_redriven(run: Run, record: QueueRecord) -> None:
    assert isinstance(record, Redriven)
    for message_id in record.message_ids:
        expected = run.model[message_id]
        assert expected.status == "dead"
        expected.status, expected.handed_out = "ready", 0


def _check_reset(run: Run, record: QueueRecord) -> None:
    """Replay: messages from the offset on start over; older ones still owed an outcome are skipped."""
    assert isinstance(record, GroupReset)
    for message_id, expected in run.model.items():
        if message_id >= record.from_id:
            run.model[message_id] = Expected(expected.max_attempts)
        elif expected.status in ("ready", "leased"):
            expected.status = "skipped"


_CHECKS = {
    Leased: _check_leased,
    Acked: _check_acked,
    Nacked: _check_retry,
    LeaseExpired: _check_retry,
    Extended: _check_extended,
    DeadLettered: _check_dead,
    Redriven: _check_redriven,
    GroupReset: _check_reset,
}

TOKEN_OPS = ("ack", "nack", "extend", "term")
enqueues = st.tuples(st.just("enqueue"), st.integers(0, 2), st.sampled_from([0, 0, 1_500]))
leases = st.tuples(st.just("lease"), st.sampled_from([1_000, 3_000]), st.just(0))
answers = st.tuples(st.sampled_from(TOKEN_OPS), st.integers(0, 7), st.sampled_from([-1, 0, 700]))
ticks = st.tuples(st.just("tick"), st.sampled_from([1, 500, 1_000, 4_000]), st.just(0))
others = st.tuples(
    st.sampled_from(["sweep", "sweep", "redrive", "snapshot", "crash", "reset", "trim"]), st.integers(0, 50), st.just(0)
)
operations = st.one_of(enqueues, leases, leases, answers, answers, answers, ticks, others, others)


def answer(run: Run, op: str, token: int, option: int) -> None:
    """ack/nack/extend/term with `token`; a stale token must be refused and change nothing."""
    state, now = run.log.state, run.now
    was_live = run.live(token)
    before = run.log.fingerprint()
    try:
        if op == "ack":
            run.record(ack(state, GROUP, token, now))
        elif op == "nack":
            run.record(nack(state, GROUP, token, now, "failed", None if option < 0 else option))
        elif op == "extend":
            run.record(extend(state, GROUP, token, now, 1_000 + max(option, 0)))
        else:
            run.record(term(state, GROUP, token, now, "poison"))
    except StaleLease:
        assert not was_live and run.log.fingerprint() == before
    else:
        assert was_live


def replay(run: Run, from_id: str) -> None:
    """Reset the group to `from_id`, refused (changing nothing) when trimmed messages would be needed."""
    before = run.log.fingerprint()
    try:
        record = reset(run.log.state, GROUP, from_id)
    except ReplayTrimmed:
        trimmed = run.log.state.trimmed_through
        assert trimmed is not None and from_id <= trimmed and run.log.fingerprint() == before
    else:
        run.record(record)


def step(run: Run, op: str, a: int, b: int) -> None:
    state = run.log.state
    if op == "enqueue":
        message_id = f"{len(run.model) + 1:06d}"
        message = QueuedMessage(message_id, b"v", run.now, b, (0, 200)[:a])
        run.model[message_id] = Expected(message.max_attempts)
        run.log.append_all([enqueue(state, message)])
    elif op == "lease":
        record = lease(state, GROUP, "w", run.now, a)
        if record is not None:
            run.record(record)
    elif op in TOKEN_OPS:
        if run.issued:
            answer(run, op, run.issued[-1 - a % len(run.issued)], b)  # recent tokens, live more often
    elif op == "tick":
        run.now += a
    elif op == "sweep":
        expired = expire(state, GROUP, run.now)
        leased = {e.token for e in run.model.values() if e.status == "leased" and e.expires_ms <= run.now}
        assert {record.token for record in expired} == leased
        for record in expired:
            run.record(record)
    elif op == "redrive":
        if state.groups[GROUP].dead:
            run.record(redrive(state, GROUP, None, run.now))
    elif op == "reset":
        replay(run, f"{a:06d}" if a else "")
    elif op == "trim":
        record = trim(state)
        if record is not None:
            needed = [i for i, e in run.model.items() if e.status in ("ready", "leased", "dead")]
            assert all(record.through_id < message_id for message_id in needed)
            run.log.append_all([record])
    elif op == "snapshot":
        run.snapshots.append(run.log.fingerprint())
    else:
        before = run.log.fingerprint()
        run.log.crash(run.snapshots[-1] if a % 2 and run.snapshots else None)
        assert run.log.fingerprint() == before


def drain(run: Run) -> None:
    """Let time pass and a healthy worker ack everything still owed an outcome."""
    for _ in range(50):
        run.now += 10**6
        for record in expire(run.log.state, GROUP, run.now):
            run.record(record)
        while (record := lease(run.log.state, GROUP, "healthy", run.now, 1_000)) is not None:
            run.record(record)
            run.record(ack(run.log.state, GROUP, record.token, run.now))
        if not run.log.state.groups[GROUP].leases and not run.log.state.groups[GROUP].ready_due:
            return
    raise AssertionError("the queue did not drain")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=20, max_size=150))
def test_random_interleavings_keep_every_promise(ops: list[tuple[str, int, int]]) -> None:
    run = Run()
    run.log.append_all([create_group(run.log.state, GROUP, "")])
    for op, a, b in ops:
        step(run, op, a, b)
    drain(run)
    group = run.log.state.groups[GROUP]
    kinds = {type(decode_record(data)).__name__ for data in run.log.records}
    event(f"made {len(kinds)} of the 11 record kinds")
    event(f"dead letters: {len(group.dead) > 0}, redeliveries: {group.redeliveries > 0}")
    event(f"trimmed: {run.log.state.trimmed_through is not None}")
    for message_id, expected in run.model.items():
        assert expected.status in ("acked", "dead", "skipped"), message_id
        assert expected.acks == (1 if expected.status == "acked" else 0)
        assert (message_id in group.dead) == (expected.status == "dead")
    assert group.acked == run.acks
    assert run.log.fingerprint() == QueueLog(records=run.log.records).replay_fingerprint()
