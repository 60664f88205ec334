"""Idempotent producers (PROTOCOL.md §5.2.1): the decision, never the mutation.

`decide` maps the stored state of one (stream, producer) pair and an incoming (epoch, seq) to
an outcome and the state to commit if the append goes ahead. Storage commits that state in the
same log record as the data, so a crash can never separate the two (durable-streams #143).

A stream remembers at most MAX_PRODUCERS_PER_STREAM producers (ProducerTable): producer ids
are the client's to choose, so without a bound one client could grow a stream's memory forever.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

MAX_SAFE_INTEGER: Final = 2**53 - 1
#: Producers a stream remembers; the one whose last accepted append is oldest is forgotten first.
MAX_PRODUCERS_PER_STREAM: Final = 1024


@dataclass(frozen=True, slots=True)
class ProducerState:
    epoch: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ProducerTuple:
    producer_id: str
    epoch: int
    seq: int


class ProducerTable(OrderedDict[str, ProducerState]):
    """One stream's producers, least recently appending first, at most `limit` of them.

    Only `record` (an accepted append) changes it, never a duplicate or a refusal, so the table
    is a pure function of the log: recovery replaying the records rebuilds exactly the table the
    running process had. A forgotten producer is a new one again (as after the reference
    server's expiry of producer state): its next append must start at Producer-Seq 0 (409 with
    Producer-Expected-Seq 0 otherwise), in any epoch, and retries of its old appends are no
    longer recognised as duplicates.
    """

    limit: int = MAX_PRODUCERS_PER_STREAM

    def record(self, producer_id: str, state: ProducerState) -> None:
        self[producer_id] = state
        self.move_to_end(producer_id)
        while len(self) > self.limit:
            self.popitem(last=False)


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
