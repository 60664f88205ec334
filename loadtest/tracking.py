"""Per-process bookkeeping: what each reader received, what each writer got acknowledged.

Readers track the last seq seen per writer. The first message a reader sees from a writer sets
its baseline (a reader starts at `offset=now`, so earlier seqs are legitimately not delivered);
after that a jump of k > 1 counts k - 1 missed messages and a seq at or below the last one
counts a duplicate. (The protocol keeps one producer's appends in order, so a late arrival,
which would count as missed and then as duplicated, should never happen.)

Delivery latency (receive time - the writer's `ts`) goes into a compact histogram per read mode,
so workers of a distributed run can ship it to the master and percentiles merge exactly at the
histogram's resolution (0.1 ms below 10 ms, then about 1-10 %).

Everything here is plain dicts, lists, ints and strings (msgpack- and JSON-friendly).
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

#: Identifies this locust process; writer and reader ids include it so distributed workers never collide.
PROCESS_TOKEN = secrets.token_hex(3)


def latency_bucket(ms: float) -> int:
    """Latency in tenths of a ms: 0.1 ms steps below 10 ms, then 1 ms, 10 ms (from 100 ms), 100 ms (from 1 s)."""
    if ms < 0:
        ms = 0.0
    if ms < 10:
        return round(ms * 10)  # 0.1 ms steps
    if ms < 100:
        return round(ms) * 10  # 1 ms
    if ms < 1000:
        return round(ms / 10) * 100  # 10 ms
    return round(ms / 100) * 1000  # 100 ms


def percentile(histogram: dict[str, int] | Counter[str], q: float) -> float | None:
    """The q-quantile (0..1) of a bucket histogram, in milliseconds (nearest-rank)."""
    items = sorted((int(k), v) for k, v in histogram.items() if v > 0)
    total = sum(v for _, v in items)
    if total == 0:
        return None
    rank = min(total, max(1, math.ceil(q * total - 1e-9)))
    seen = 0
    for bucket, count in items:
        seen += count
        if seen >= rank:
            return bucket / 10
    return items[-1][0] / 10


class Delivery(NamedTuple):
    latency_ms: float | None  # None for duplicates and malformed messages
    missed: int  # seqs skipped just before this message
    duplicate: bool


@dataclass
class ReaderStats:
    id: str
    mode: str
    stream: int
    delivered: int = 0
    missed: int = 0
    duplicated: int = 0
    malformed: int = 0
    requests: int = 0  # long-poll requests, or SSE connections
    errors: int = 0
    closed: bool = False
    retired: bool = False  # stopped by a load shape before the end of the test
    last_seq: dict[str, int] = field(default_factory=dict)  # writer id -> last seq seen


@dataclass
class WriterStats:
    id: str
    streams: list[int]
    appended: int = 0  # 200: new data
    duplicate_acks: int = 0  # 204: a retry of a seq the server already had
    attempts: int = 0
    retries: int = 0
    failures: int = 0  # attempts that failed (network, 5xx, 429, ...)
    conflicts: int = 0  # 403/409 producer errors
    last_acked: dict[str, int] = field(default_factory=dict)  # stream index -> last acked seq


class Tracker:
    def __init__(self) -> None:
        self.readers: dict[str, ReaderStats] = {}
        self.writers: dict[str, WriterStats] = {}
        self.latency: dict[str, Counter[str]] = {}

    def add_reader(self, kind: str, index: int, mode: str, stream: int) -> ReaderStats:
        stats = ReaderStats(f"{kind}-{PROCESS_TOKEN}-{index}", mode, stream)
        self.readers[stats.id] = stats
        return stats

    def add_writer(self, index: int, streams: list[int]) -> WriterStats:
        stats = WriterStats(f"w{index}-{PROCESS_TOKEN}", list(streams))
        self.writers[stats.id] = stats
        return stats

    def deliver(self, reader: ReaderStats, message: Any, received: float) -> Delivery:
        """Account for one message received at `received` (time.time())."""
        try:
            writer = str(message["writer"])
            seq = int(message["seq"])
            sent = float(message["ts"])
        except (KeyError, TypeError, ValueError):
            reader.malformed += 1
            return Delivery(None, 0, False)
        last = reader.last_seq.get(writer)
        if last is not None and seq <= last:
            reader.duplicated += 1
            return Delivery(None, 0, True)
        reader.last_seq[writer] = seq
        reader.delivered += 1
        ms = (received - sent) * 1000.0
        self.latency.setdefault(reader.mode, Counter())[str(latency_bucket(ms))] += 1
        missed = seq - last - 1 if last is not None and seq > last + 1 else 0
        reader.missed += missed
        return Delivery(ms, missed, False)

    def snapshot(self) -> dict[str, Any]:
        return {
            "readers": {k: asdict(v) for k, v in self.readers.items()},
            "writers": {k: asdict(v) for k, v in self.writers.items()},
            "latency": {k: dict(v) for k, v in self.latency.items()},
        }


TRACKER = Tracker()
