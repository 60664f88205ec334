"""Failover of the postgres engine: a 3-node Patroni cluster loses its leader, then one of two origins dies.

Two `plugin-streams origin --engine postgres` processes share one database, reached through the
multi-host DSN with target_session_attrs=read-write (PatroniCluster.dsn). Eight idempotent
producers append to one text stream, each append naming the next origin in turn and each retrying
the same (epoch, seq) on 503, a timeout or a connection error (switching origin on the latter)
until it gets 200 (accepted) or 204 (already there: an earlier attempt had committed without its
answer reaching the producer). Four live readers follow the stream from -1, one SSE and one
long-poll per origin, resuming from their last offset on any error and moving to the other origin
when theirs is gone.

After ~3 s of appends the leader's host dies (SIGKILL of its Patroni and its postmaster); the
synchronous standby takes over after the leader key's ttl. A few seconds after writes resume,
origin 2 is SIGKILLed. Appends go on for a few seconds more, then stop.

Asserted, reading the stream back through the surviving origin: every acknowledged append is there
exactly once and each producer's appends are in seq order; every live reader ended with exactly
the stream's bytes, and those of the dead origin moved to the other; the longest pause between two
acknowledgements is within ttl + 5 s; no request was ever answered with a 5xx other than 503 (nor
failed by an origin after the headers of a live response: its log tells). One line of figures is
printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.shared import headers as h
from plugin_streams.shared.aio.tasks import cancel_all, spawn
from tests.support.patroni import PatroniCluster
from tests.support.processes import OriginProcess, ProcessGroup, process_group
from tests.support.sse_reader import SSEReader

pytestmark = pytest.mark.timeout(300)  # ~30 s here: Patroni's start, three phases of load, the failover (~ttl)

PRODUCERS = 8
#: Appends before the leader dies, after writes resume before origin 2 dies, and after that.
LOAD_BEFORE_KILL = 3.0
LOAD_BEFORE_ORIGIN_KILL = 3.0
LOAD_AFTER_ORIGIN_KILL = 3.0
#: Patroni's ttl plus this is the longest pause of writes the issue allows.
PAUSE_SLACK = 5.0
#: Longest the whole failover may take before the test gives up waiting for writes to resume.
RESUME_DEADLINE = 60.0
LONG_POLL_TIMEOUT = 1.0
#: How long live readers may take to reach the final tail once the producers stopped.
READERS_CATCH_UP = 30.0
#: An SSE response silent this long is given up (TimeoutError) and resumed, on the other origin.
SSE_SILENCE = 15.0
TEXT = "text/plain"
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=2)
#: What a client sees when an origin dies under it or never answers.
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
#: One append's bytes: which producer, which seq; ';' ends it (no newline: SSE carries it as is).
APPEND_RE = re.compile(rb"p(\d\d)s(\d{6});")


def body_of(producer: int, seq: int) -> bytes:
    return b"p%02ds%06d;" % (producer, seq)


@dataclass
class Origins:
    """The two origins' stream URLs; clients pick one by index and move to the other on connection errors."""

    urls: list[str]

    def other(self, index: int) -> int:
        return (index + 1) % len(self.urls)


@dataclass
class Load:
    """What every client saw: acknowledgement times, every status, the figures of the summary."""

    started: float = field(default_factory=time.monotonic)
    #: (time acknowledged, time its last attempt was sent) of every acknowledged append.
    acks: list[tuple[float, float]] = field(default_factory=list)
    acked: dict[int, list[int]] = field(default_factory=dict)
    #: How each append was acknowledged: seconds since the start, status, origin (for failure messages).
    how_acked: dict[tuple[int, int], str] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    in_doubt_resolved: int = 0  # a retry answered 204: an earlier attempt had committed unacknowledged
    connection_errors: int = 0
    stop_producers: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, method: str, url: str, status: int, body: bytes) -> None:
        """Count a status; a 5xx other than 503 (or any status the protocol does not give here) is a failure."""
        self.statuses[status] += 1
        if status >= 500 and status != 503:
            self.failed(f"{method} {url}: {status} {body[:300]!r}")

    def failed(self, what: str) -> None:
        self.bad.append(f"at {self.since_start():.2f} s: {what}")

    def since_start(self, moment: float | None = None) -> float:
        return (time.monotonic() if moment is None else moment) - self.started

    def resumed_after(self, moment: float) -> bool:
        """True once an append whose last attempt was sent after `moment` has been acknowledged."""
        return any(sent > moment for _, sent in self.acks)

    def longest_pause(self) -> tuple[float, float]:
        """The longest time between two consecutive acknowledgements (of any producers), and when it began."""
        times = sorted(acked for acked, _ in self.acks)
        gaps = [(later - earlier, earlier) for earlier, later in itertools.pairwise(times)]
        return max(gaps, default=(0.0, 0.0))


async def produce(session: aiohttp.ClientSession, origins: Origins, load: Load, producer: int) -> None:
    """Append seq 0, 1, ... until told to stop; each append is retried until it is acknowledged."""
    load.acked[producer] = []
    seq = 0
    while not load.stop_producers.is_set():
        if not await append_until_acknowledged(session, origins, load, producer, seq):
            return  # a seq that can never be acknowledged: its successors would only get 409s
        seq += 1


async def append_until_acknowledged(
    session: aiohttp.ClientSession, origins: Origins, load: Load, producer: int, seq: int
) -> bool:
    """POST (producer, epoch 0, seq) until 200 or 204, alternating origins per append, switching on errors.

    False (the failure recorded) when an answer other than 200, 204 or 503 makes retrying pointless.
    """
    index = (producer + seq) % len(origins.urls)
    headers = {
        h.CONTENT_TYPE: TEXT,
        h.PRODUCER_ID: f"producer-{producer}",
        h.PRODUCER_EPOCH: "0",
        h.PRODUCER_SEQ: str(seq),
    }
    for attempt in range(10_000):
        sent = time.monotonic()
        url = origins.urls[index]
        try:
            async with session.post(url, data=body_of(producer, seq), headers=headers) as response:
                body = await response.read()
                status = response.status
        except CONNECTION_ERRORS:
            load.connection_errors += 1
            index = origins.other(index)
            await asyncio.sleep(0.05)
            continue
        load.saw("POST", url, status, body)
        if status in (200, 204):
            if status == 204:
                if attempt == 0:  # the first attempt of a seq cannot be a duplicate
                    load.failed(f"producer {producer} seq {seq}: 204 on the first attempt")
                load.in_doubt_resolved += 1
            load.acks.append((time.monotonic(), sent))
            load.acked[producer].append(seq)
            load.how_acked[producer, seq] = f"{status} at {load.since_start():.2f} s from {url}"
            return True
        if status != 503:
            load.failed(f"producer {producer} seq {seq}: POST {url} answered {status} {body[:300]!r}")
            return False
        await asyncio.sleep(min(float(response.headers.get(h.RETRY_AFTER, "0.1") or 0.1), 0.5))
    load.failed(f"producer {producer} seq {seq}: never acknowledged")
    return False


@dataclass
class Reader:
    """A live reader (`mode` sse or long-poll) starting at one origin; the bytes it holds and its offset."""

    name: str
    mode: str
    index: int
    data: bytearray = field(default_factory=bytearray)
    offset: str = h.OFFSET_START
    reconnects: int = 0
    #: The stream's final tail, once the producers stopped: the reader stops when it gets there.
    target: str | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def moved_to(self, offset: str) -> None:
        self.offset = offset
        if offset == self.target:
            self.caught_up.set()

    def aim(self, target: str) -> None:
        self.target = target
        self.moved_to(self.offset)

    def done(self) -> bool:
        return self.caught_up.is_set()


async def follow(session: aiohttp.ClientSession, origins: Origins, load: Load, reader: Reader) -> None:
    """Read live until the target offset is reached, resuming from the last offset after any error."""
    while not reader.done():
        url = origins.urls[reader.index]
        try:
            if reader.mode == h.LIVE_SSE:
                await follow_sse(session, url, load, reader)
            else:
                await long_poll(session, url, load, reader)
        except CONNECTION_ERRORS:
            reader.reconnects += 1
            reader.index = origins.other(reader.index)
            await asyncio.sleep(0.05)


async def long_poll(session: aiohttp.ClientSession, url: str, load: Load, reader: Reader) -> None:
    params = {h.QUERY_OFFSET: reader.offset, h.QUERY_LIVE: h.LIVE_LONG_POLL}
    async with session.get(url, params=params) as response:
        body = await response.read()
        load.saw("GET long-poll", url, response.status, body)
        if response.status == 200:
            reader.data += body
        if response.status in (200, 204):
            reader.moved_to(response.headers[h.STREAM_NEXT_OFFSET])
            return
        if response.status != 503:
            load.failed(f"{reader.name}: GET {url} answered {response.status} {body[:300]!r}")
        reader.reconnects += 1
        await asyncio.sleep(0.1)


async def follow_sse(session: aiohttp.ClientSession, url: str, load: Load, reader: Reader) -> None:
    """One SSE response: data is kept only once the control event after it names its end offset."""
    params = {h.QUERY_OFFSET: reader.offset, h.QUERY_LIVE: h.LIVE_SSE}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=2)
    async with session.get(url, params=params, timeout=timeout) as response:
        if response.status != 200:
            body = await response.read()
            load.saw("GET sse", url, response.status, body)
            if response.status != 503:
                load.failed(f"{reader.name}: GET {url} answered {response.status} {body[:300]!r}")
            reader.reconnects += 1
            await asyncio.sleep(0.1)
            return
        load.saw("GET sse", url, 200, b"")
        events, pending = SSEReader(response), bytearray()
        while (event := await events.next(timeout=SSE_SILENCE)) is not None:
            if event.event == h.SSE_EVENT_DATA:
                pending += event.data.encode()
            elif event.event == "control":
                reader.data += pending
                pending.clear()
                reader.moved_to(json.loads(event.data)["streamNextOffset"])
                if reader.done():
                    return
    reader.reconnects += 1  # the server ended the response: resume where the last control left off


async def read_back(session: aiohttp.ClientSession, url: str) -> tuple[bytes, str]:
    """The whole stream by catch-up reads: its bytes and its tail offset."""
    data, offset = bytearray(), h.OFFSET_START
    for _ in range(100_000):
        async with session.get(url, params={h.QUERY_OFFSET: offset}) as response:
            body = await response.read()
            assert response.status == 200, f"read-back GET {url}?offset={offset}: {response.status} {body[:300]!r}"
            data += body
            offset = response.headers[h.STREAM_NEXT_OFFSET]
            if response.headers.get(h.STREAM_UP_TO_DATE) == "true":
                return bytes(data), offset
    raise AssertionError("the read-back never became up to date")


def appends_in(data: bytes) -> list[tuple[int, int]]:
    """(producer, seq) of every append in the stream's bytes, in stream order; nothing else may be there."""
    found = [(int(p), int(s)) for p, s in APPEND_RE.findall(data)]
    assert len(found) * len(body_of(0, 0)) == len(data), "the stream holds bytes that are no append"
    return found


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, LONG_POLL_TIMEOUT) as started:
        yield started


async def start_origins(group: ProcessGroup, tmp_path: Path, dsn: str) -> list[OriginProcess]:
    flags = ("--engine", "postgres", "--database-url", dsn)
    return [await group.aorigin(*flags, data_dir=tmp_path / f"origin{n}") for n in (1, 2)]


async def test_leader_and_origin_die_under_load_nothing_acknowledged_is_lost(
    patroni_cluster: PatroniCluster, group: ProcessGroup, tmp_path: Path
) -> None:
    cluster = patroni_cluster
    origins_started = await start_origins(group, tmp_path, cluster.dsn)
    origins = Origins([f"{origin.stream_url}failover" for origin in origins_started])
    load = Load()
    readers = [
        Reader(f"{mode} on origin {index + 1}", mode, index)
        for index in range(len(origins.urls))
        for mode in (h.LIVE_SSE, h.LIVE_LONG_POLL)
    ]
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
        async with session.put(origins.urls[0], headers={h.CONTENT_TYPE: TEXT}) as response:
            assert response.status == 201, f"PUT: {response.status} {await response.text()}"
        reading = [spawn(follow(session, origins, load, reader), name=reader.name) for reader in readers]
        producing = [spawn(produce(session, origins, load, p), name=f"producer {p}") for p in range(PRODUCERS)]
        try:
            killed_leader, leader_killed_at, resumed_at = await kill_leader(cluster, load)
            await asyncio.sleep(LOAD_BEFORE_ORIGIN_KILL)
            await asyncio.to_thread(origins_started[1].kill)
            await asyncio.sleep(LOAD_AFTER_ORIGIN_KILL)
            load.stop_producers.set()
            async with asyncio.timeout(60):
                await asyncio.gather(*producing)
            stream, tail = await read_back(session, origins.urls[0])
            for reader in readers:
                reader.aim(tail)
            # A reader at the tail may be waiting inside a live read: it is done once it holds the tail.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READERS_CATCH_UP):
                    await asyncio.gather(*(reader.caught_up.wait() for reader in readers))
        finally:
            await cancel_all([*producing, *reading])

    in_stream = appends_in(stream)
    counts = Counter(in_stream)
    acknowledged = {(p, seq) for p, seqs in load.acked.items() for seq in seqs}
    lost = sorted(acknowledged - set(counts))
    duplicated = sorted(append for append, count in counts.items() if count > 1)
    unacknowledged = sorted(set(counts) - acknowledged)
    pause, pause_began = load.longest_pause()
    allowed = cluster.ttl + PAUSE_SLACK
    reader_bytes = sum(len(reader.data) for reader in readers)
    print(
        f"\nfailover: pause {pause:.2f} s (leader {killed_leader} killed at {leader_killed_at - load.started:.1f} s,"
        f" first append sent after it acknowledged at {resumed_at - load.started:.1f} s),"
        f" acknowledged {len(acknowledged)}, lost {len(lost)}, duplicated {len(duplicated)},"
        f" in-doubt resolved as 204 by a retry {load.in_doubt_resolved},"
        f" reader bytes checked {reader_bytes} ({len(readers)} readers x {len(stream)}),"
        f" connection errors {load.connection_errors}, statuses {dict(sorted(load.statuses.items()))}"
    )

    assert not lost, f"{len(lost)} acknowledged appends missing: {[(a, load.how_acked[a]) for a in lost[:10]]}"
    assert not load.bad, f"failed requests: {load.bad[:20]}"
    # A live response that fails after its headers cannot turn into a 500: the origin's log tells.
    unhandled = [line for origin in origins_started for line in unhandled_errors(origin)]
    assert not unhandled, f"requests the origins failed with a 500: {unhandled[:10]}"
    assert not duplicated, f"{len(duplicated)} appends in the stream more than once, e.g. {duplicated[:10]}"
    assert not unacknowledged, f"appends in the stream no producer saw acknowledged: {unacknowledged[:10]}"
    for producer in range(PRODUCERS):
        seqs = [seq for p, seq in in_stream if p == producer]
        assert seqs == list(range(len(seqs))), f"producer {producer}'s appends out of order: {seqs[:50]}"
    assert pause <= allowed, (
        f"writes paused {pause:.2f} s (from {pause_began - load.started:.1f} s), more than ttl {cluster.ttl} + "
        f"{PAUSE_SLACK:g} s"
    )
    for reader in readers:
        assert bytes(reader.data) == stream, (
            f"{reader.name} holds {len(reader.data)} bytes at {reader.offset}, the stream {len(stream)} at {tail}"
            f" (reconnects {reader.reconnects}); first difference at"
            f" {next((i for i, (a, b) in enumerate(zip(reader.data, stream, strict=False)) if a != b), None)}"
        )
    moved = [reader.name for reader in readers if reader.index != 0]
    assert not moved, f"readers that never moved to the surviving origin: {moved}"
    assert await asyncio.to_thread(cluster.leader) != killed_leader


def unhandled_errors(origin: OriginProcess) -> list[str]:
    """The log lines of requests an origin answered with a 500 (shared.aio.http_errors)."""
    log = origin.log_path.read_text(errors="replace")
    return [line for line in log.splitlines() if "unhandled error on" in line]


async def kill_leader(cluster: PatroniCluster, load: Load) -> tuple[str, float, float]:
    """After LOAD_BEFORE_KILL s of appends, kill the leader's host; returns it, when, and when writes resumed."""
    await asyncio.sleep(LOAD_BEFORE_KILL)
    assert load.acks, f"no append acknowledged in the first {LOAD_BEFORE_KILL} s: {load.bad[:5]}"
    leader = await asyncio.to_thread(cluster.leader)
    await asyncio.to_thread(cluster.kill_node, leader)
    killed_at = time.monotonic()  # when every process of the host is gone: later answers come from elsewhere
    deadline = killed_at + RESUME_DEADLINE
    while not load.resumed_after(killed_at):
        assert time.monotonic() < deadline, f"writes did not resume within {RESUME_DEADLINE:g} s: {load.bad[:5]}"
        await asyncio.sleep(0.05)
    resumed_at = min(acked for acked, sent in load.acks if sent > killed_at)
    return leader, killed_at, resumed_at
