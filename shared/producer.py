"""Idempotent producers (PROTOCOL.md §5.2.1): the decision, never the mutation.

`decide` maps the stored state of one (stream, producer) pair and an incoming (epoch, seq) to
an outcome and the state to commit if the append goes ahead. Storage commits that state in the
same log record as the data, so a crash can never separate the two (durable-streams #143).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

MAX_SAFE_INTEGER: Final = 2**53 - 1


@dataclass(frozen=True, slots=True)
class ProducerState:
    epoch: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ProducerTuple:
    producer_id: str
    epoch: int
    seq: int


class Outcome(enum.Enum):
    ACCEPT = "accept"  # 200, the data is new
    DUPLICATE = "duplicate"  # 204, already appended: echo the highest accepted seq
    STALE_EPOCH = "stale_epoch"  # 403, zombie fenced: report the current epoch
    SEQUENCE_GAP = "sequence_gap"  # 409, expected/received
    BAD_EPOCH_SEQ = "bad_epoch_seq"  # 400, a new epoch must start at seq 0


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    state: ProducerState | None  # state to commit on ACCEPT; the stored state otherwise
    expected_seq: int | None = None


def decide(state: ProducerState | None, epoch: int, seq: int) -> Decision:
    if state is None:
        # A producer the stream has never seen must start its sequence at 0.
        if seq != 0:
            return Decision(Outcome.SEQUENCE_GAP, None, expected_seq=0)
        return Decision(Outcome.ACCEPT, ProducerState(epoch, 0))
    if epoch < state.epoch:
        return Decision(Outcome.STALE_EPOCH, state)
    if epoch > state.epoch:
        if seq != 0:
            return Decision(Outcome.BAD_EPOCH_SEQ, state)
        return Decision(Outcome.ACCEPT, ProducerState(epoch, 0))
    if seq <= state.last_seq:
        return Decision(Outcome.DUPLICATE, state)
    if seq == state.last_seq + 1:
        return Decision(Outcome.ACCEPT, ProducerState(epoch, seq))
    return Decision(Outcome.SEQUENCE_GAP, state, expected_seq=state.last_seq + 1)
