"""Storage crash tests against real `plugin-streams origin` processes (file engine).

What is verified, each time by reading back over HTTP after a restart on the same data dir:

1. SIGKILL while 8 idempotent producers append concurrently (3 kill/restart cycles, with
   `--fsync always` and `--fsync never`): every acknowledged append is present exactly once,
   each producer's appends are in seq order with no gap, nothing unsent appears; retrying each
   producer's last sent seq answers 204 if it was persisted and 200 if not, and leaves it in the
   stream exactly once; seq + 1 is then accepted (200). The same holds for a graceful SIGTERM
   racing the appends, which must also exit 0.
2. Torn tails are cut off on restart: random garbage, a torn copy of an index entry, a short
   header, an entry with a bad checksum, a valid entry whose payloads never reached the data file
   (all appended to a stream's `index`), and payloads whose entry never arrived (appended to its
   `data`). The K records survive, nothing else; later appends land right after them; a second
   restart changes nothing (idempotent). The files are parsed here from the documented format,
   independently of the engine's code.
3. Every Stream-Next-Offset handed out before a SIGKILL reads exactly the same bytes afterwards.
4. Concurrent readers never see partial appends: snapshots are prefixes made of whole units and
   include every append acknowledged before they started (read-your-writes).
5. A graceful restart (exit code 0) keeps content, producer state and the tail offset.
6. Delete + recreate at the same path: offsets of the old incarnation answer 410 Gone, never the
   new incarnation's bytes; offsets of incarnations never collide, also across crashes.
7. Stream-TTL slides with reads across a restart and expires 3 s after the last read;
   Stream-Expires-At is honoured to within 300 ms; expired streams' directories are reclaimed,
   by the sweeper even when nobody asks about them.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import struct
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import OriginProcess

BINARY = "application/octet-stream"
JSON = "application/json"
NEXT = "Stream-Next-Offset"
OFFSET_RE = re.compile(r"\A\d{16}_\d{16}\Z")
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=15)
#: Errors a client sees when the server dies under it.
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


# -- processes ------------------------------------------------------------------------------


Launch = Callable[..., OriginProcess]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def launch(data_dir: Path) -> Iterator[Launch]:
    """Start an origin on the test's data dir (always the same one); all are killed at teardown."""
    started: list[OriginProcess] = []

    def start(*flags: str, long_poll_timeout: float = 0.5) -> OriginProcess:
        process = OriginProcess(data_dir, *flags, long_poll_timeout=long_poll_timeout)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


def server_log(process: OriginProcess) -> str:
    return process.log_path.read_text(errors="replace")


def stream_dir(data_dir: Path, offset: str) -> Path:
    """The directory of the incarnation that minted `offset` (its first field is the generation)."""
    return data_dir / "streams" / offset.split("_")[0]


async def wait_until_gone(path: Path, timeout: float) -> float:
    """Seconds it took `path` to disappear; fails after `timeout`."""
    started = time.monotonic()
    while await asyncio.to_thread(path.exists):
        assert time.monotonic() - started < timeout, f"{path} still exists after {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# -- HTTP -----------------------------------------------------------------------------------


@asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        yield session


async def create(session: aiohttp.ClientSession, url: str, content_type: str = BINARY, **headers: str) -> str:
    """PUT a new stream (must be 201); returns its first Stream-Next-Offset."""
    async with session.put(url, headers={"Content-Type": content_type, **headers}) as response:
        body = await response.text()
        assert response.status == 201, f"PUT {url}: {response.status} {body}"
        return check_offset(response.headers[NEXT])


async def append(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    producer: tuple[str, int, int] | None = None,
    content_type: str = BINARY,
) -> tuple[int, dict[str, str]]:
    """POST; returns the status and the response headers (names lower-cased)."""
    headers = {"Content-Type": content_type}
    if producer is not None:
        producer_id, epoch, seq = producer
        headers |= {"Producer-Id": producer_id, "Producer-Epoch": str(epoch), "Producer-Seq": str(seq)}
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status, {k.lower(): v for k, v in response.headers.items()}


async def append_ok(session: aiohttp.ClientSession, url: str, body: bytes, content_type: str = BINARY) -> str:
    """POST without producer headers (must be 204); returns Stream-Next-Offset."""
    status, headers = await append(session, url, body, content_type=content_type)
    assert status == 204, f"POST {url}: {status}"
    return check_offset(headers["stream-next-offset"])


async def get_once(session: aiohttp.ClientSession, url: str, offset: str, **params: str) -> tuple[int, bytes, dict]:
    """One GET ?offset=...: status, body and headers (names lower-cased)."""
    async with session.get(url, params={"offset": offset, **params}) as response:
        body = await response.read()
        return response.status, body, {k.lower(): v for k, v in response.headers.items()}


async def status_of(session: aiohttp.ClientSession, method: str, url: str) -> int:
    async with session.request(method, url) as response:
        await response.read()
        return response.status


@dataclass
class Read:
    """A catch-up read followed to the tail: each response's body and Stream-Next-Offset."""

    chunks: list[bytes]
    offsets: list[str]

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def next_offset(self) -> str:
        return self.offsets[-1]

    def messages(self) -> list[object]:
        """JSON streams: every response is one array; the messages of the whole read."""
        return [message for chunk in self.chunks for message in json.loads(chunk)]


async def read_all(session: aiohttp.ClientSession, url: str, offset: str = "-1") -> Read:
    """GET from `offset`, following Stream-Next-Offset until Stream-Up-To-Date: true."""
    result = Read([], [])
    for _ in range(100_000):
        status, body, headers = await get_once(session, url, offset)
        assert status == 200, f"GET {url}?offset={offset}: {status} {body[:200]!r}"
        next_offset = check_offset(headers["stream-next-offset"])
        result.chunks.append(body)
        result.offsets.append(next_offset)
        if headers.get("stream-up-to-date") == "true":
            return result
        assert next_offset > offset or offset == "-1", f"read from {offset} did not advance and is not up to date"
        offset = next_offset
    raise AssertionError("read never became up to date")


async def head_offset(session: aiohttp.ClientSession, url: str) -> str:
    async with session.head(url) as response:
        assert response.status == 200, f"HEAD {url}: {response.status}"
        return check_offset(response.headers[NEXT])


def check_offset(offset: str) -> str:
    assert OFFSET_RE.match(offset), f"malformed offset {offset!r}"
    return offset


# -- 1. SIGKILL (and SIGTERM) during concurrent idempotent appends ---------------------------

UNIT = 100  # every producer append is exactly this long and names its producer and seq
UNIT_RE = re.compile(rb"\Ap(\d+)-s(\d+)\|")
PRODUCERS = 8


def unit_payload(producer: int, seq: int) -> bytes:
    tag = f"p{producer}-s{seq}|".encode()
    return (tag * (UNIT // len(tag) + 1))[:UNIT]


@dataclass
class Producer:
    index: int
    next_seq: int = 0
    last_sent: int | None = None
    acked: set[int] = field(default_factory=set)
    in_flight: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"producer-{self.index}"

    def payload(self, seq: int) -> bytes:
        return unit_payload(self.index, seq)


@dataclass
class Totals:
    interruptions: int = 0
    acknowledged: int = 0
    in_flight_at_interrupt: int = 0
    persisted_without_ack: int = 0
    lost: int = 0
    duplicated: int = 0


async def produce(
    session: aiohttp.ClientSession, url: str, producer: Producer, interrupted: asyncio.Event, progress: asyncio.Event
) -> None:
    """Append seq after seq until the server goes away; record what it acknowledged."""
    while True:
        seq = producer.next_seq
        producer.last_sent = seq
        producer.in_flight = True
        try:
            status, headers = await append(session, url, producer.payload(seq), producer=(producer.id, 0, seq))
        except CONNECTION_ERRORS:
            return  # the server died: this seq is unacknowledged
        finally:
            producer.in_flight = False
        if status >= 500 and interrupted.is_set():
            return  # refused while stopping: unacknowledged, and allowed
        if status != 200 or headers.get("producer-seq") != str(seq):
            producer.errors.append(f"seq {seq}: {status} Producer-Seq={headers.get('producer-seq')}")
            progress.set()
            return
        producer.acked.add(seq)
        producer.next_seq = seq + 1
        progress.set()


def acked_count(producers: list[Producer]) -> int:
    return sum(len(p.acked) for p in producers)


def check_no_errors(producers: list[Producer]) -> None:
    for producer in producers:
        assert not producer.errors, f"{producer.id}: unexpected answers: {producer.errors}"


async def run_and_interrupt(
    url: str, producers: list[Producer], rng: random.Random, signal: Callable[[], object], totals: Totals
) -> None:
    """Run every producer; after 40 more acknowledgements and a random delay, `signal` the server."""
    interrupted = asyncio.Event()
    progress = asyncio.Event()  # set on every answer
    async with client() as session, asyncio.timeout(40), asyncio.TaskGroup() as group:
        for producer in producers:
            group.create_task(produce(session, url, producer, interrupted, progress))
        target = acked_count(producers) + 40
        while acked_count(producers) < target:
            check_no_errors(producers)
            progress.clear()
            await progress.wait()
        await asyncio.sleep(rng.uniform(0.0, 0.7))
        in_flight = sum(p.in_flight for p in producers)
        interrupted.set()  # from here on, a 5xx is an allowed answer (graceful stop)
        await asyncio.to_thread(signal)
    totals.interruptions += 1
    totals.in_flight_at_interrupt += in_flight
    print(f"  interrupted with {in_flight} appends in flight, {acked_count(producers)} acknowledged so far")
    check_no_errors(producers)


def persisted_seqs(data: bytes, producers: list[Producer]) -> tuple[dict[int, list[int]], Totals]:
    """Parse the stream into (producer, seq) units, checking that each is one that was sent."""
    assert len(data) % UNIT == 0, f"stream length {len(data)} is not a whole number of {UNIT}-byte appends"
    found: dict[int, list[int]] = {p.index: [] for p in producers}
    for start in range(0, len(data), UNIT):
        unit = data[start : start + UNIT]
        match = UNIT_RE.match(unit)
        assert match, f"garbage at byte {start}: {unit!r}"
        index, seq = int(match.group(1)), int(match.group(2))
        assert index in found, f"unknown producer in {unit!r}"
        producer = producers[index]
        assert unit == producer.payload(seq), f"corrupt append at byte {start}: {unit!r}"
        assert producer.last_sent is not None and seq <= producer.last_sent, f"never sent: {unit!r}"
        found[index].append(seq)
    counts = Totals()
    for producer in producers:
        seqs = found[producer.index]
        counts.duplicated += len(seqs) - len(set(seqs))
        counts.lost += len(producer.acked - set(seqs))
    return found, counts


def check_producer_order(found: dict[int, list[int]], producers: list[Producer]) -> None:
    for producer in producers:
        seqs = found[producer.index]
        assert seqs == list(range(len(seqs))), f"{producer.id}: seqs out of order or with gaps: {seqs}"
        assert max(producer.acked, default=-1) < len(seqs), f"{producer.id}: acknowledged seqs missing"


async def verify_producers(session: aiohttp.ClientSession, url: str, producers: list[Producer], totals: Totals) -> dict:
    found, counts = persisted_seqs((await read_all(session, url)).data, producers)
    totals.lost += counts.lost
    totals.duplicated += counts.duplicated
    print(f"  verified {sum(map(len, found.values()))} appends: lost={counts.lost} duplicated={counts.duplicated}")
    assert counts.lost == 0, f"{counts.lost} acknowledged appends lost"
    assert counts.duplicated == 0, f"{counts.duplicated} appends duplicated"
    check_producer_order(found, producers)
    return found


async def retry_last_sent(
    session: aiohttp.ClientSession, url: str, producers: list[Producer], found: dict, totals: Totals
) -> None:
    """(b) resend each producer's last seq: 204 if it was persisted, 200 if not; once in the stream."""
    for producer in producers:
        seq = producer.last_sent
        if seq is None:
            continue
        persisted = seq in found[producer.index]
        if persisted and seq not in producer.acked:
            totals.persisted_without_ack += 1
        status, headers = await append(session, url, producer.payload(seq), producer=(producer.id, 0, seq))
        expected = 204 if persisted else 200
        assert status == expected, f"{producer.id} retry of seq {seq} (persisted={persisted}): {status}, not {expected}"
        assert headers.get("producer-seq") == str(seq), f"{producer.id} retry: Producer-Seq {headers}"
        producer.acked.add(seq)
        producer.next_seq = seq + 1
    data = (await read_all(session, url)).data
    units = Counter(data[i : i + UNIT] for i in range(0, len(data), UNIT))
    for producer in producers:
        if producer.last_sent is not None:
            assert units[producer.payload(producer.last_sent)] == 1, f"{producer.id}: retried append not exactly once"


async def continue_after_retry(session: aiohttp.ClientSession, url: str, producers: list[Producer]) -> None:
    """(c) the next seq after the retried one is a new append: 200."""
    for producer in producers:
        seq = producer.next_seq
        producer.last_sent = seq
        status, headers = await append(session, url, producer.payload(seq), producer=(producer.id, 0, seq))
        assert status == 200, f"{producer.id} seq {seq} after recovery: {status} {headers}"
        producer.acked.add(seq)
        producer.next_seq = seq + 1


def report(name: str, interruption: str, totals: Totals, producers: list[Producer]) -> None:
    totals.acknowledged = acked_count(producers)
    print(
        f"{name}: {interruption}={totals.interruptions} acknowledged={totals.acknowledged} "
        f"in_flight_at_interrupt={totals.in_flight_at_interrupt} "
        f"persisted_without_ack={totals.persisted_without_ack} lost={totals.lost} duplicated={totals.duplicated}"
    )


@pytest.mark.parametrize("fsync", ["always", "never"])
async def test_sigkill_during_concurrent_producer_appends(launch: Launch, fsync: str) -> None:
    seed = random.randrange(2**32)
    print(f"\nseed={seed} fsync={fsync}")
    rng = random.Random(seed)
    producers = [Producer(i) for i in range(PRODUCERS)]
    totals = Totals()
    process = launch("--fsync", fsync)
    url = process.stream_url + "crash/producers"
    async with client() as session:
        await create(session, url)
    for _ in range(3):
        await run_and_interrupt(url, producers, rng, process.kill, totals)
        process = launch("--fsync", fsync)
        url = process.stream_url + "crash/producers"
        async with client() as session:
            found = await verify_producers(session, url, producers, totals)
            await retry_last_sent(session, url, producers, found, totals)
            await continue_after_retry(session, url, producers)
            await verify_producers(session, url, producers, totals)
    report(f"SIGKILL crash test (fsync={fsync})", "kills", totals, producers)
    assert totals.lost == 0 and totals.duplicated == 0


async def test_sigterm_during_concurrent_producer_appends(launch: Launch) -> None:
    rng = random.Random()
    producers = [Producer(i) for i in range(PRODUCERS)]
    totals = Totals()
    process = launch()
    url = process.stream_url + "graceful/producers"
    async with client() as session:
        await create(session, url)
    exit_codes: list[int] = []
    await run_and_interrupt(url, producers, rng, lambda: exit_codes.append(process.stop()), totals)
    assert exit_codes == [0], f"SIGTERM exit code {exit_codes}; log:\n{server_log(process)}"
    process = launch()
    url = process.stream_url + "graceful/producers"
    async with client() as session:
        found = await verify_producers(session, url, producers, totals)
        await retry_last_sent(session, url, producers, found, totals)
        await continue_after_retry(session, url, producers)
        await verify_producers(session, url, producers, totals)
    report("\nSIGTERM during appends", "stops", totals, producers)


# -- 2. torn tails --------------------------------------------------------------------------

PREFIX = struct.Struct("<II")  # crc32 over everything after it, body length
HEAD = struct.Struct("<QII")  # data_start, crc32 of the batch's payloads, record count
LENGTH = struct.Struct("<I")


def split_index(raw: bytes) -> tuple[list[bytes], int]:
    """The checksummed entries of an index file (raw bytes, per the documented format) and where they end."""
    entries: list[bytes] = []
    pos = 0
    while pos + PREFIX.size <= len(raw):
        crc, body_len = PREFIX.unpack_from(raw, pos)
        end = pos + PREFIX.size + body_len
        if body_len < HEAD.size or end > len(raw) or zlib.crc32(raw[pos + 4 : end]) != crc:
            break
        entries.append(raw[pos:end])
        pos = end
    return entries, pos


def holds(entries: list[bytes], data: bytes, payloads: list[bytes]) -> bool:
    """One entry per append (one record each), naming exactly that payload where the data file has it."""
    if len(entries) != len(payloads) or data != b"".join(payloads):
        return False
    at = 0
    for entry, payload in zip(entries, payloads, strict=True):
        data_start, data_crc, count = HEAD.unpack_from(entry, PREFIX.size)
        (length,) = LENGTH.unpack_from(entry, PREFIX.size + HEAD.size)
        if (data_start, data_crc, count, length) != (at, zlib.crc32(payload), 1, len(payload)):
            return False
        at += len(payload)
    return True


def entry_without_payload(data_end: int, rng: random.Random) -> bytes:
    """A valid entry for a payload that never reached the data file."""
    payload = rng.randbytes(50)
    body = HEAD.pack(data_end, zlib.crc32(payload), 1) + LENGTH.pack(len(payload)) + b"\x00"
    size = LENGTH.pack(len(body))
    return LENGTH.pack(zlib.crc32(size + body)) + size + body


def garbage(kind: str, last_entry: bytes, data_end: int, rng: random.Random) -> tuple[bytes, bytes]:
    """What a crash left at the end of (index, data)."""
    if kind == "random":
        return rng.randbytes(rng.randint(1, 300)), b""
    if kind == "torn_entry":  # a valid entry whose last byte never reached the disk
        return last_entry[:-1], b""
    if kind == "short_header":  # less than the 8-byte crc + length prefix
        return last_entry[:6], b""
    if kind == "bad_checksum":  # complete, but one byte flipped
        return last_entry[:-1] + bytes([last_entry[-1] ^ 0xFF]), b""
    if kind == "entry_without_payload":
        return entry_without_payload(data_end, rng), b""
    if kind == "payload_without_entry":
        return b"", rng.randbytes(rng.randint(1, 3000))
    raise ValueError(kind)


KINDS = ["random", "torn_entry", "short_header", "bad_checksum", "entry_without_payload", "payload_without_entry"]


def read_files(directory: Path) -> tuple[bytes, bytes]:
    return (directory / "index").read_bytes(), (directory / "data").read_bytes()


@pytest.mark.parametrize("kind", KINDS)
async def test_torn_tail_is_cut_off_and_recovery_is_idempotent(launch: Launch, data_dir: Path, kind: str) -> None:
    rng = random.Random()
    first = [f"record {i} ".encode() + rng.randbytes(rng.randint(1, 2000)) for i in range(20)]
    more = [f"later {i} ".encode() + rng.randbytes(rng.randint(1, 2000)) for i in range(7)]
    process = launch()
    url = process.stream_url + "torn"
    async with client() as session:
        offset = await create(session, url)
        for payload in first:
            tail = await append_ok(session, url, payload)
    assert process.stop() == 0
    directory = stream_dir(data_dir, offset)
    clean_index, clean_data = read_files(directory)
    entries, end = split_index(clean_index)
    assert end == len(clean_index) and holds(entries, clean_data, first), "files do not match the documented format"
    index_garbage, data_garbage = garbage(kind, entries[-1], len(clean_data), rng)
    (directory / "index").write_bytes(clean_index + index_garbage)
    (directory / "data").write_bytes(clean_data + data_garbage)

    process = launch()
    async with client() as session:
        url = process.stream_url + "torn"
        read = await read_all(session, url)
        assert read.data == b"".join(first)
        assert await head_offset(session, url) == tail
        assert read_files(directory) == (clean_index, clean_data), "recovery did not cut the files back"
        assert f"discarded {len(index_garbage) + len(data_garbage)} bytes" in server_log(process)
        for payload in more:
            await append_ok(session, url, payload)
        assert (await read_all(session, url)).data == b"".join(first + more)
    assert process.stop() == 0
    after = read_files(directory)
    entries, end = split_index(after[0])
    assert end == len(after[0]), "bytes after the last valid entry"
    assert holds(entries, after[1], first + more), "the files do not hold exactly the appended records"
    discards = server_log(process).count("discarded")

    process = launch()  # nothing appended in between: recovery must change nothing
    async with client() as session:
        url = process.stream_url + "torn"
        assert (await read_all(session, url)).data == b"".join(first + more)
        assert read_files(directory) == after
    assert process.stop() == 0
    assert read_files(directory) == after
    assert server_log(process).count("discarded") == discards, "the second recovery discarded something"


# -- 3. offsets survive a crash -------------------------------------------------------------


async def test_offsets_survive_sigkill(launch: Launch) -> None:
    rng = random.Random()
    payloads = [rng.randbytes(rng.randint(1, 6000)) for _ in range(60)]  # > 64 KiB: several chunks
    process = launch()
    url = process.stream_url + "offsets"
    async with client() as session:
        offsets = [await create(session, url)]
        for payload in payloads:
            offsets.append(await append_ok(session, url, payload))
        for i, offset in enumerate(offsets):
            assert (await read_all(session, url, offset)).data == b"".join(payloads[i:])
        full = await read_all(session, url)
        assert full.data == b"".join(payloads)
        offsets += full.offsets  # chunk boundaries handed out by reads, too
        before = {offset: (await read_all(session, url, offset)).data for offset in offsets}
        tail = await head_offset(session, url)
    process.kill()

    process = launch()
    url = process.stream_url + "offsets"
    async with client() as session:
        assert await head_offset(session, url) == tail
        assert (await read_all(session, url)).data == full.data
        for offset, expected in before.items():
            assert (await read_all(session, url, offset)).data == expected, f"offset {offset} changed meaning"


# -- 4. concurrent readers ------------------------------------------------------------------

READER_UNIT = 96


def reader_unit(i: int) -> bytes:
    return f"{i:08d}".encode() * 12


def expected_units(count: int) -> bytes:
    return b"".join(reader_unit(i) for i in range(count))


@dataclass
class WriterState:
    acked: int = 0
    done: bool = False


async def write_units(url: str, state: WriterState, seconds: float, min_units: int) -> None:
    """Append units one by one for `seconds` (and at least `min_units`); right after each 2xx,
    read from just before it: it must be there (read-your-writes)."""
    async with client() as session, client() as reader:
        async with session.head(url) as response:
            previous = response.headers[NEXT]
        deadline = time.monotonic() + seconds
        i = 0
        while i < min_units or time.monotonic() < deadline:
            next_offset = await append_ok(session, url, reader_unit(i))
            state.acked = i + 1
            status, body, headers = await get_once(reader, url, previous)
            assert status == 200 and body == reader_unit(i), f"read-your-writes failed for unit {i}: {body[:40]!r}"
            assert headers["stream-next-offset"] == next_offset
            previous = next_offset
            i += 1
    state.done = True


async def read_snapshots(url: str, state: WriterState) -> int:
    """Read the whole stream again and again; every snapshot is whole units and a fresh prefix."""
    snapshots = 0
    async with client() as session:
        while not state.done:
            floor = state.acked  # acknowledged before this snapshot started
            read = await read_all(session, url)
            for chunk in read.chunks:
                assert len(chunk) % READER_UNIT == 0, f"partial append in a response of {len(chunk)} bytes"
            count = len(read.data) // READER_UNIT
            assert read.data == expected_units(count), "snapshot is not a prefix of the appends"
            assert count >= floor, f"snapshot of {count} units misses appends acknowledged before it ({floor})"
            snapshots += 1
    return snapshots


async def follow_live(url: str, state: WriterState, start: str) -> bytes:
    """Long-poll from the tail until every acknowledged unit has arrived."""
    received = b""
    offset = start
    async with client() as session:
        while not (state.done and len(received) >= state.acked * READER_UNIT):
            status, body, headers = await get_once(session, url, offset, live="long-poll")
            assert status in (200, 204), status
            assert len(body) % READER_UNIT == 0, f"partial append in a live response of {len(body)} bytes"
            received += body
            offset = headers["stream-next-offset"]
    return received


async def test_concurrent_readers_never_see_partial_appends(launch: Launch) -> None:
    process = launch("--chunk-size", "2048")  # many chunks per snapshot
    url = process.stream_url + "readers"
    async with client() as session:
        start = await create(session, url)
    state = WriterState()
    async with asyncio.timeout(45), asyncio.TaskGroup() as group:
        writer = group.create_task(write_units(url, state, 3.0, 60))
        readers = [group.create_task(read_snapshots(url, state)) for _ in range(5)]
        follower = group.create_task(follow_live(url, state, start))
    await writer
    async with client() as session:
        final = (await read_all(session, url)).data
    assert final == expected_units(state.acked)
    assert follower.result() == final
    snapshots = [reader.result() for reader in readers]
    print(f"\nconcurrent readers: {state.acked} appends, snapshots per reader {snapshots}")
    assert min(snapshots) >= 3, "too little concurrency to prove anything"


# -- 5. graceful restart --------------------------------------------------------------------


async def test_graceful_restart_keeps_content_offsets_and_producers(launch: Launch) -> None:
    rng = random.Random()
    process = launch()
    binary_url = process.stream_url + "graceful/binary"
    json_url = process.stream_url + "graceful/json"
    payloads = [rng.randbytes(rng.randint(1, 5000)) for _ in range(40)]
    messages: list[object] = []
    async with client() as session:
        await create(session, binary_url)
        await create(session, json_url, JSON)
        for seq, payload in enumerate(payloads):
            status, _ = await append(session, binary_url, payload, producer=("writer", 3, seq))
            assert status == 200
        for i in range(15):
            batch = [{"i": i, "j": j, "text": "x" * rng.randint(0, 50)} for j in range(rng.randint(1, 4))]
            body = json.dumps(batch if i % 2 else batch[0]).encode()
            await append_ok(session, json_url, body, JSON)
            messages += batch if i % 2 else batch[:1]
        binary_before = await read_all(session, binary_url)
        json_before = await read_all(session, json_url)
        assert binary_before.data == b"".join(payloads)
        assert json_before.messages() == messages
        tails = (await head_offset(session, binary_url), await head_offset(session, json_url))
    assert process.stop() == 0, f"SIGTERM exit code; log:\n{server_log(process)}"

    process = launch()
    binary_url = process.stream_url + "graceful/binary"
    json_url = process.stream_url + "graceful/json"
    async with client() as session:
        assert (await head_offset(session, binary_url), await head_offset(session, json_url)) == tails
        binary_after = await read_all(session, binary_url)
        json_after = await read_all(session, json_url)
        assert binary_after.chunks == binary_before.chunks
        assert binary_after.offsets == binary_before.offsets
        assert json_after.chunks == json_before.chunks
        last = len(payloads) - 1
        status, headers = await append(session, binary_url, payloads[-1], producer=("writer", 3, last))
        assert (status, headers.get("producer-seq")) == (204, str(last)), "producer state lost"
        status, _ = await append(session, binary_url, b"next", producer=("writer", 3, last + 1))
        assert status == 200
        status, _ = await append(session, binary_url, b"zombie", producer=("writer", 2, 0))
        assert status == 403, "epoch fencing lost"
    assert process.stop() == 0


# -- 6. delete + recreate -------------------------------------------------------------------


async def fill(session: aiohttp.ClientSession, url: str, payloads: list[bytes]) -> list[str]:
    """Create `url` and append `payloads`; returns every offset handed out."""
    offsets = [await create(session, url)]
    for payload in payloads:
        offsets.append(await append_ok(session, url, payload))
    return offsets


async def assert_all_gone(session: aiohttp.ClientSession, url: str, offsets: list[str]) -> None:
    for offset in offsets:
        status, body, _ = await get_once(session, url, offset)
        assert status == 410, f"old offset {offset}: {status} {body[:80]!r} (an earlier incarnation's offset)"


async def test_delete_and_recreate_never_mixes_incarnations(launch: Launch) -> None:
    old = [f"old-{i}|".encode() * 20 for i in range(5)]
    new = [f"NEW:{i};".encode() * 7 for i in range(5)]
    third = [f"third {i} ".encode() * 3 for i in range(5)]
    process = launch()
    url = process.stream_url + "recycled"
    async with client() as session:
        old_offsets = await fill(session, url, old)
        inside = old_offsets[2]
        assert (await read_all(session, url, inside)).data == b"".join(old[2:])
        assert await status_of(session, "DELETE", url) == 204
        assert (await get_once(session, url, inside))[0] == 404
        assert await status_of(session, "HEAD", url) == 404
        new_offsets = await fill(session, url, new)
        assert not set(new_offsets) & set(old_offsets), "a new incarnation reused offsets"
        await assert_all_gone(session, url, old_offsets)
        assert (await read_all(session, url)).data == b"".join(new)
    process.kill()

    process = launch()
    url = process.stream_url + "recycled"
    async with client() as session:
        await assert_all_gone(session, url, old_offsets)
        for i, offset in enumerate(new_offsets):
            assert (await read_all(session, url, offset)).data == b"".join(new[i:])
        assert await status_of(session, "DELETE", url) == 204
    process.kill()

    process = launch()
    url = process.stream_url + "recycled"
    async with client() as session:
        assert await status_of(session, "HEAD", url) == 404, "a deleted stream came back after a crash"
        third_offsets = await fill(session, url, third)
        assert not set(third_offsets) & (set(old_offsets) | set(new_offsets)), "offsets reused after a restart"
        await assert_all_gone(session, url, old_offsets + new_offsets)
        assert (await read_all(session, url)).data == b"".join(third)


# -- 7. TTL and Expires-At ------------------------------------------------------------------


async def sleep_until(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    await asyncio.sleep(max(0.0, deadline - clock()))


async def test_ttl_slides_with_reads_across_a_restart(launch: Launch, data_dir: Path) -> None:
    process = launch()
    url = process.stream_url + "ttl/sliding"
    async with client() as session:
        offset = await create(session, url, **{"Stream-TTL": "3"})
        await append_ok(session, url, b"kept alive")
        t0 = time.monotonic()
        for k in range(4):  # reads at t = 0, 1, 2, 3
            await sleep_until(t0 + k)
            assert (await read_all(session, url)).data == b"kept alive", f"read at t={k}"
    assert process.stop() == 0

    process = launch()  # an expired-at-restart stream (last access lost) would be 404 now
    url = process.stream_url + "ttl/sliding"
    async with client() as session:
        for k in (4, 5):
            await sleep_until(t0 + k)
            before = time.monotonic()
            assert (await read_all(session, url)).data == b"kept alive", f"read at t={k}: TTL did not slide"
            after = time.monotonic()
        assert time.monotonic() - t0 > 4
        await sleep_until(before + 2.7)
        assert await status_of(session, "HEAD", url) == 200, "expired before 3 s without reads"
        await sleep_until(after + 3.3)
        assert await status_of(session, "HEAD", url) == 404, "still there 3.3 s after the last read"
    await wait_until_gone(stream_dir(data_dir, offset), 5.0)


def rfc3339_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


async def test_expires_at_is_exact_and_sweeper_reclaims_disk(launch: Launch, data_dir: Path) -> None:
    process = launch()
    url = process.stream_url + "ttl/expires-at"
    unread_url = process.stream_url + "ttl/never-read"
    async with client() as session:
        expires_ms = time.time_ns() // 1_000_000 + 2000
        offset = await create(session, url, **{"Stream-Expires-At": rfc3339_ms(expires_ms)})
        await append_ok(session, url, b"short-lived")
        unread_offset = await create(session, unread_url, **{"Stream-TTL": "1"})
        unread_created = time.monotonic()
        await append_ok(session, unread_url, b"nobody reads me")  # a write refreshes the TTL, too
        unread_touched = time.monotonic()
        assert stream_dir(data_dir, offset).is_dir() and stream_dir(data_dir, unread_offset).is_dir()

        await sleep_until((expires_ms - 300) / 1000, time.time)
        status, body, _ = await get_once(session, url, "-1")
        assert (status, body) == (200, b"short-lived"), "expired early"
        await sleep_until((expires_ms + 300) / 1000, time.time)
        assert (await get_once(session, url, "-1"))[0] == 404, "still readable 300 ms after Stream-Expires-At"
        await wait_until_gone(stream_dir(data_dir, offset), 5.0)

        # Never asked about again: only the sweeper can reclaim it, within a sweep of its expiry.
        await sleep_until(unread_touched + 1.0)
        took = await wait_until_gone(stream_dir(data_dir, unread_offset), 5.0)
        print(f"\nunread stream reclaimed {time.monotonic() - unread_created:.2f} s after creation ({took:.2f})")
        assert await status_of(session, "HEAD", unread_url) == 404
    assert process.stop() == 0
    process = launch()
    async with client() as session:
        assert await status_of(session, "HEAD", process.stream_url + "ttl/expires-at") == 404
        assert await status_of(session, "HEAD", process.stream_url + "ttl/never-read") == 404
    assert not any((data_dir / "streams").iterdir()), "expired streams left data behind"
