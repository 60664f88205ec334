"""Recent append receipts, so that a retried append that turns out a duplicate gets its offsets.

The producer state only says "already stored"; where it was stored is remembered here for the
most recent appends of this process, keyed by (generation, producer id, epoch, seq). After a
restart, or for appends that came through the protocol endpoint, a duplicate reports no offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cachetools import LRUCache

from plugin_streams.shared.producer import ProducerTuple

CAPACITY: Final = 10_000


@dataclass(frozen=True, slots=True)
class Receipt:
    offsets: tuple[str, ...]
    next_offset: str


class Receipts:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._recent: LRUCache[tuple[int, str, int, int], Receipt] = LRUCache(capacity)

    def remember(self, generation: int, producer: ProducerTuple, receipt: Receipt) -> None:
        self._recent[(generation, producer.producer_id, producer.epoch, producer.seq)] = receipt

    def find(self, generation: int, producer: ProducerTuple) -> Receipt | None:
        return self._recent.get((generation, producer.producer_id, producer.epoch, producer.seq))
