"""Idempotent producers (PROTOCOL.md §5.2.1) as transcripts: (epoch, seq) in, outcome out.

A transcript threads the state the way the service does: the proposed state is committed on
ACCEPT only; every other outcome must hand back the stored state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from plugin_streams.shared.producer import MAX_SAFE_INTEGER, Decision, Outcome, ProducerState, decide

ACCEPT, DUPLICATE, STALE, GAP, BAD = (
    Outcome.ACCEPT,
    Outcome.DUPLICATE,
    Outcome.STALE_EPOCH,
    Outcome.SEQUENCE_GAP,
    Outcome.BAD_EPOCH_SEQ,
)


@dataclass(frozen=True)
class Step:
    epoch: int
    seq: int
    outcome: Outcome
    expected_seq: int | None = None


def play(steps: list[Step], state: ProducerState | None = None) -> ProducerState | None:
    for number, step in enumerate(steps):
        decision = decide(state, step.epoch, step.seq)
        where = f"step {number}: {step}"
        assert decision.outcome is step.outcome, where
        assert decision.expected_seq == step.expected_seq, where
        if decision.outcome is ACCEPT:
            assert decision.state == ProducerState(step.epoch, step.seq), where
            state = decision.state
        else:
            assert decision.state == state, where  # the stored state, untouched
    return state


# -- a producer the stream has never seen ---------------------------------------------------


@pytest.mark.parametrize("epoch", [0, 1, 7, MAX_SAFE_INTEGER])
def test_new_producer_seq_zero_is_accepted_at_any_epoch(epoch: int) -> None:
    assert decide(None, epoch, 0) == Decision(ACCEPT, ProducerState(epoch, 0))


@pytest.mark.parametrize("seq", [1, 2, 100, MAX_SAFE_INTEGER])
def test_new_producer_must_start_at_zero(seq: int) -> None:
    assert decide(None, 0, seq) == Decision(GAP, None, expected_seq=0)
    assert decide(None, 3, seq) == Decision(GAP, None, expected_seq=0)


# -- same epoch ------------------------------------------------------------------------------


def test_same_epoch_next_seq_is_accepted() -> None:
    assert decide(ProducerState(2, 4), 2, 5) == Decision(ACCEPT, ProducerState(2, 5))


@pytest.mark.parametrize("seq", [0, 1, 3, 4])
def test_same_epoch_seen_seq_is_a_duplicate(seq: int) -> None:
    stored = ProducerState(2, 4)
    decision = decide(stored, 2, seq)
    assert decision == Decision(DUPLICATE, stored)
    # The caller echoes the highest accepted seq, not the request's.
    assert decision.state is not None and decision.state.last_seq == 4


@pytest.mark.parametrize("seq", [6, 7, 1000, MAX_SAFE_INTEGER])
def test_same_epoch_skipped_seq_is_a_gap(seq: int) -> None:
    stored = ProducerState(2, 4)
    assert decide(stored, 2, seq) == Decision(GAP, stored, expected_seq=5)


# -- higher epoch ----------------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [3, 4, MAX_SAFE_INTEGER])
def test_higher_epoch_at_seq_zero_starts_a_new_session(epoch: int) -> None:
    assert decide(ProducerState(2, 4), epoch, 0) == Decision(ACCEPT, ProducerState(epoch, 0))


@pytest.mark.parametrize("seq", [1, 5, 6])
def test_higher_epoch_must_start_at_seq_zero(seq: int) -> None:
    stored = ProducerState(2, 4)
    assert decide(stored, 3, seq) == Decision(BAD, stored)


# -- lower epoch -----------------------------------------------------------------------------


@pytest.mark.parametrize(("epoch", "seq"), [(0, 0), (1, 0), (1, 5), (1, 100)])
def test_lower_epoch_is_stale_whatever_the_seq(epoch: int, seq: int) -> None:
    stored = ProducerState(2, 4)
    decision = decide(stored, epoch, seq)
    assert decision == Decision(STALE, stored)
    # 403 reports the current epoch.
    assert decision.state is not None and decision.state.epoch == 2


# -- transcripts -----------------------------------------------------------------------------


def test_bootstrap_pipeline_and_retries() -> None:
    final = play(
        [
            Step(0, 1, GAP, expected_seq=0),  # seq 1 raced ahead of seq 0
            Step(0, 0, ACCEPT),
            Step(0, 0, DUPLICATE),  # a retry of seq 0 does not corrupt state
            Step(0, 1, ACCEPT),
            Step(0, 2, ACCEPT),
            Step(0, 1, DUPLICATE),
            Step(0, 4, GAP, expected_seq=3),
            Step(0, 3, ACCEPT),
            Step(0, 4, ACCEPT),
        ]
    )
    assert final == ProducerState(0, 4)


def test_restart_and_zombie_fencing() -> None:
    final = play(
        [
            Step(0, 0, ACCEPT),
            Step(0, 1, ACCEPT),
            Step(1, 1, BAD),  # a restart must reset seq
            Step(1, 0, ACCEPT),  # restart: epoch 0 -> 1
            Step(0, 2, STALE),  # the zombie of epoch 0
            Step(0, 0, STALE),
            Step(1, 1, ACCEPT),
            Step(1, 0, DUPLICATE),
        ]
    )
    assert final == ProducerState(1, 1)


def test_auto_claim_after_stale_epoch() -> None:
    # §5.2.1 "Auto-claim": a fresh producer at epoch 0 meets stored epoch 5, then claims 6.
    final = play([Step(0, 0, STALE), Step(6, 0, ACCEPT), Step(6, 1, ACCEPT)], ProducerState(5, 9))
    assert final == ProducerState(6, 1)


def test_epoch_jump_skipping_epochs_is_allowed() -> None:
    assert play([Step(10, 0, ACCEPT), Step(10, 1, ACCEPT)], ProducerState(2, 4)) == ProducerState(10, 1)


def test_sequence_up_to_max_safe_integer() -> None:
    stored = ProducerState(0, MAX_SAFE_INTEGER - 1)
    assert decide(stored, 0, MAX_SAFE_INTEGER) == Decision(ACCEPT, ProducerState(0, MAX_SAFE_INTEGER))


def test_decide_does_not_mutate_the_stored_state() -> None:
    stored = ProducerState(3, 3)
    for epoch, seq in [(3, 4), (4, 0), (2, 0), (3, 9), (4, 1), (3, 1)]:
        decide(stored, epoch, seq)
    assert stored == ProducerState(3, 3)
