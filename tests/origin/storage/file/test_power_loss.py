"""Power loss under a real origin: every acknowledged append is still there after the cut.

The origin's data directory is on ext4 on a loop device (tests/support/loop_fs.py). While
binary, JSON and idempotent-producer appends are in flight, the power is cut at a random moment:
the device is frozen at one instant, the origin SIGKILLed, and the device copied as it was,
which drops exactly what a power cut drops (dirty page cache, uncommitted journal). e2fsck
replays the journal (and must find nothing worse than an unclean shutdown leaves), a new origin
starts on the recovered disk, and the test reads everything back over HTTP only, so it holds
for any on-disk format:

- every acknowledged append is present, exactly once, bytes intact, and in each writer's order;
- an append acknowledged before another was sent comes before it in the stream (append order is
  the order the origin acknowledged in, across writers);
- unacknowledged appends may be present or absent, but never torn: a JSON batch is all its
  messages or none, a binary append all its bytes or none, nothing appears that was never sent;
- producer state is recovered with the data: retrying the last seq sent answers 204 if it was
  persisted and 200 if not (then it is there once), an older seq is a 204 duplicate that adds
  nothing, a gap is 409 naming the expected seq, and the next seq is accepted (200).

Each round continues on the disk the previous cut left (repeated power losses). In half the
rounds the origin is SIGKILLed up to 20 ms before the power goes, so appends it had made durable
but not yet acknowledged survive too (the producers' retries then meet a 204).

Why freeze and copy: the loop device's image is "the device"; the filesystem above it keeps
writing after a SIGKILL (flusher, journal commits), so a copy taken while that goes on mixes
moments and gives disks no power cut produces (measured: 4 of 12 plain copies failed e2fsck,
0 of 12 frozen ones). Freezing the filesystem *holding* the image stops the device at one instant
without writing back the disk's own page cache, which is what must be lost. The model and what it
leaves out (a volatile disk cache dropping completed writes) are in tests/support/loop_fs.py.

The test can fail: `test_power_loss_without_fsync_loses_acknowledged_appends` runs the same
rounds against `--fsync never` and requires that the check finds acknowledged appends lost,
which proves the capture really drops what was only in the page cache.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.origin.test_crash_recovery import CLIENT_TIMEOUT, CONNECTION_ERRORS, append, get_once
from tests.support.loop_fs import PowerCutDisk, missing_tools, power_cut_disk
from tests.support.postgres import require
from tests.support.processes import OriginProcess

BINARY = "application/octet-stream"
JSON = "application/json"
ROUNDS = 8
#: Binary appends span 4 KiB pages (a torn page is the classic power-loss damage).
UNIT_SIZES = (40, 9000)
UNIT_HEADER = re.compile(rb"<([bp]\d+):(\d{6}):(\d{5})>")
WRITERS = {"b": 3, "j": 3, "p": 3}  # binary, JSON batches, idempotent producers (binary)


# -- what the writers send: every append names its writer and number and is derivable from them --


def binary_unit(writer: str, n: int) -> bytes:
    rng = random.Random(f"{writer}:{n}")
    size = rng.randint(*UNIT_SIZES)
    header = f"<{writer}:{n:06d}:{size:05d}>".encode()
    return header + rng.randbytes(size - len(header))


def json_batch(writer: str, n: int) -> list[dict[str, object]]:
    rng = random.Random(f"{writer}:{n}")
    count = rng.randint(1, 5)
    pads = ["".join(rng.choices("abcdefghij", k=rng.randint(1, 3000))) for _ in range(count)]
    return [{"w": writer, "n": n, "i": i, "of": count, "pad": pad} for i, pad in enumerate(pads)]


Unit = tuple[str, int]  # (writer, n)


def parse_units(
    content: Sequence[Any], start_of: Callable[[Sequence[Any], int], Unit | None], unit_of: Callable[[str, int], Any]
) -> tuple[list[Unit], list[str]]:
    """The appends a stream holds, in order, and where it holds something that is no whole append (torn).

    `content` is a binary stream's bytes or a JSON stream's messages; `start_of` names the append
    that starts at a position (None: none does), `unit_of` rebuilds what that append sent.
    """
    units: list[Unit] = []
    pos = 0
    while pos < len(content):
        unit = start_of(content, pos)
        if unit is None:
            return units, [f"at {pos}: no append starts here: {content[pos : pos + 40]!r:.120}"]
        expected = unit_of(*unit)
        if content[pos : pos + len(expected)] != expected:
            return units, [f"at {pos}: {unit[0]}#{unit[1]} is torn or corrupt ({len(content) - pos} left)"]
        units.append(unit)
        pos += len(expected)
    return units, []


def binary_start(data: Sequence[Any], pos: int) -> Unit | None:
    match = UNIT_HEADER.match(bytes(data[pos : pos + 32]))
    return (match.group(1).decode(), int(match.group(2))) if match else None


def json_start(messages: Sequence[Any], pos: int) -> Unit | None:
    """A batch starts with its message i=0."""
    first = messages[pos]
    if isinstance(first, dict) and first.get("i") == 0 and isinstance(first.get("n"), int):
        return str(first.get("w")), first["n"]
    return None


def parse_binary(data: bytes) -> tuple[list[Unit], list[str]]:
    return parse_units(data, binary_start, binary_unit)


def parse_json(messages: list[object]) -> tuple[list[Unit], list[str]]:
    """A JSON batch is one append: all of its messages, in order, or it is torn."""
    return parse_units(messages, json_start, json_batch)


# -- what the writers were told ------------------------------------------------------------------


@dataclass
class Append:
    """One send of append n: logical times of the send and of its acknowledgement (None: none came)."""

    sent_at: int
    acked_at: int | None = None


@dataclass
class Writer:
    name: str  # b0.., j0.., p0..: the kind is the first letter
    appends: dict[int, Append] = field(default_factory=dict)
    next_n: int = 0

    @property
    def acked(self) -> set[int]:
        return {n for n, sent in self.appends.items() if sent.acked_at is not None}

    @property
    def last_sent(self) -> int | None:
        return max(self.appends, default=None)


@dataclass
class Damage:
    """What a power cut did to acknowledged or sent appends; all empty when the origin is correct."""

    gone: list[str] = field(default_factory=list)  # streams missing altogether (their appends are in `lost`)
    lost: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)

    def add(self, other: Damage) -> None:
        for name in ("gone", "lost", "torn", "duplicated", "out_of_order"):
            getattr(self, name).extend(getattr(other, name))

    def counts(self) -> str:
        return (
            f"streams_gone={len(self.gone)} lost={len(self.lost)} torn={len(self.torn)} "
            f"duplicated={len(self.duplicated)} out_of_order={len(self.out_of_order)}"
        )

    def summary(self) -> str:
        """The counts and the first few of each kind: enough to start from, short enough to read."""
        kinds = ("gone", "lost", "torn", "duplicated", "out_of_order")
        return self.counts() + "".join(f"\n  {k}: {getattr(self, k)[:5]}" for k in kinds if getattr(self, k))

    def clean(self) -> bool:
        return not (self.gone or self.lost or self.torn or self.duplicated or self.out_of_order)


def check_units(units: list[Unit], writers: list[Writer]) -> Damage:
    """Compare what a stream holds with what its writers sent and were acknowledged."""
    damage = Damage()
    for writer in writers:
        seqs = [n for name, n in units if name == writer.name]
        damage.duplicated += [f"{writer.name}#{n} x{k}" for n, k in Counter(seqs).items() if k > 1]
        damage.torn += [f"{writer.name}#{n} was never sent" for n in seqs if n not in writer.appends]
        damage.lost += [f"{writer.name}#{n}" for n in sorted(writer.acked - set(seqs))]
        # A writer waits for each answer before its next send: what survives is a prefix 0..k.
        if seqs != list(range(len(seqs))):
            damage.out_of_order.append(f"{writer.name}: {seqs[:20]}...")
    by_name = {writer.name: writer for writer in writers}
    acked_after = float("inf")  # the earliest acknowledgement among the appends that follow
    for name, n in reversed(units):
        sent = by_name[name].appends.get(n) if name in by_name else None
        if sent is None:
            continue
        if acked_after < sent.sent_at:
            damage.out_of_order.append(f"{name}#{n} precedes an append acknowledged before it was sent")
        if sent.acked_at is not None:
            acked_after = min(acked_after, sent.acked_at)
    return damage


# -- the load --------------------------------------------------------------------------------------


@dataclass
class Streams:
    base: str  # the origin's /v1/stream/ URL

    def url(self, kind: str) -> str:
        return f"{self.base}power/{kind}"


CONTENT_TYPES = {"b": BINARY, "j": JSON, "p": BINARY}


async def send(session: aiohttp.ClientSession, streams: Streams, writer: Writer, n: int) -> tuple[int, dict]:
    kind = writer.name[0]
    if kind == "j":
        body = json.dumps(json_batch(writer.name, n)).encode()
    else:
        body = binary_unit(writer.name, n)
    producer = (writer.name, 0, n) if kind == "p" else None
    return await append(session, streams.url(kind), body, producer=producer, content_type=CONTENT_TYPES[kind])


async def write_until_cut(
    session: aiohttp.ClientSession,
    streams: Streams,
    writer: Writer,
    clock: Iterator[int],
    errors: list[str],
    progress: asyncio.Event,
) -> None:
    """Append n, n+1, ... one at a time until the origin goes away; record sends and acknowledgements."""
    accepted = 200 if writer.name[0] == "p" else 204
    while True:
        n = writer.next_n
        sent = writer.appends[n] = Append(next(clock))
        try:
            status, headers = await send(session, streams, writer, n)
        except CONNECTION_ERRORS:
            return  # the power went: this one is unacknowledged
        finally:
            progress.set()
        if status != accepted or (accepted == 200 and headers.get("producer-seq") != str(n)):
            errors.append(f"{writer.name}#{n}: {status} {headers}")
            return
        sent.acked_at = next(clock)
        writer.next_n = n + 1


def acked_total(writers: list[Writer]) -> int:
    return sum(len(writer.acked) for writer in writers)


def in_flight(writers: list[Writer]) -> int:
    return sum(1 for w in writers if w.last_sent is not None and w.appends[w.last_sent].acked_at is None)


# -- one origin on the disk, and the cut ------------------------------------------------------------


@dataclass
class Run:
    disk: PowerCutDisk
    fsync: str
    workdir: Path
    writers: list[Writer]
    rng: random.Random
    #: syncfs after creating the streams (an operator's `sync`): the self-check then shows appends lost, not streams.
    sync_after_create: bool = False
    clock: Iterator[int] = field(default_factory=itertools.count)
    started: list[OriginProcess] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[Writer]:
        return [writer for writer in self.writers if writer.name[0] == kind]

    async def start_origin(self) -> Streams:
        mount_point = await asyncio.to_thread(self.disk.attach)
        process = OriginProcess(mount_point / "data", "--fsync", self.fsync)
        process.log_path = self.workdir / f"origin-{len(self.started)}.log"  # off the disk: it survives cuts
        self.started.append(process)
        await asyncio.to_thread(process.start)
        return Streams(process.stream_url)

    async def load_and_cut(self, session: aiohttp.ClientSession, streams: Streams) -> tuple[Path, str]:
        """Append from every writer; after a random number of acknowledgements and a random delay, cut.

        Half the rounds the power goes first and the origin dies with it; the other half the origin
        is SIGKILLed first and the power goes up to 20 ms later. Returns the captured disk and a
        description of the cut.
        """
        process = self.started[-1]
        assert process.proc is not None
        pid = process.proc.pid
        errors: list[str] = []
        progress = asyncio.Event()  # set at every answer
        async with asyncio.timeout(60), asyncio.TaskGroup() as group:
            for writer in self.writers:
                group.create_task(write_until_cut(session, streams, writer, self.clock, errors, progress))
            target = acked_total(self.writers) + self.rng.randint(20, 300)
            while acked_total(self.writers) < target and not errors:
                progress.clear()
                await progress.wait()
            await asyncio.sleep(self.rng.uniform(0.0, 0.2))
            pending = in_flight(self.writers)
            kill_first = self.rng.random() < 0.5
            if kill_first:
                # The process dies first (its fdatasyncs in progress still complete in the kernel: appends
                # persisted but never acknowledged), the power goes a moment later.
                os.kill(pid, signal.SIGKILL)
                await asyncio.sleep(self.rng.uniform(0.0, 0.02))
            captured = await asyncio.to_thread(self.disk.cut_power, lambda: kill_first or os.kill(pid, signal.SIGKILL))
        # Leaving the group: every writer saw its connection drop once the thaw let the origin die.
        await asyncio.to_thread(process.kill)  # reaps it: it dies once the thaw lets its fdatasync return
        process.assert_loop_never_blocked()
        assert not errors, f"unexpected answers before the cut: {errors}\n{process.log_path.read_text()[-3000:]}"
        order = "SIGKILL, then power cut" if kill_first else "power cut and SIGKILL"
        return captured, f"{order} with {pending} appends in flight"

    def stop_all(self) -> None:
        for process in self.started:
            process.kill()


async def read_stream(session: aiohttp.ClientSession, url: str) -> list[bytes] | None:
    """Every response body of a catch-up from the start to the tail; None if the stream is gone (404)."""
    bodies: list[bytes] = []
    offset = "-1"
    for _ in range(100_000):
        status, body, headers = await get_once(session, url, offset)
        if status == 404 and not bodies:
            return None
        assert status == 200, f"GET {url}?offset={offset}: {status} {body[:200]!r}"
        bodies.append(body)
        if headers.get("stream-up-to-date") == "true":
            return bodies
        offset = headers["stream-next-offset"]
    raise AssertionError("the read never reached the tail")


async def verify(session: aiohttp.ClientSession, streams: Streams, run: Run) -> tuple[Damage, int]:
    """Read every stream back and check it against its writers; the damage and how many appends survived."""
    damage = Damage()
    survived = 0
    for kind in ("b", "j", "p"):
        bodies = await read_stream(session, streams.url(kind))
        writers = run.by_kind(kind)
        if bodies is None:
            damage.gone.append(streams.url(kind))
            damage.lost += [f"{w.name}#{n}" for w in writers for n in sorted(w.acked)]
            continue
        if kind == "j":
            units, torn = parse_json([message for body in bodies for message in json.loads(body)])
        else:
            units, torn = parse_binary(b"".join(bodies))
        damage.torn += torn
        damage.add(check_units(units, writers))
        survived += len(units)
        for writer in writers:  # what did not survive was not acknowledged: forget it, resend from there
            kept = sum(1 for name, _ in units if name == writer.name)
            writer.appends = {n: sent for n, sent in writer.appends.items() if n < kept}
            writer.next_n = kept
    return damage, survived


async def head_next_offset(session: aiohttp.ClientSession, url: str) -> str:
    async with session.head(url) as response:
        assert response.status == 200, f"HEAD {url}: {response.status}"
        return response.headers["Stream-Next-Offset"]


async def check_producers(session: aiohttp.ClientSession, streams: Streams, run: Run, last_sent: dict) -> int:
    """Retry, duplicate, gap and next seq for every producer; how many retries found their append persisted."""
    url = streams.url("p")
    persisted_retries = 0
    for writer in run.by_kind("p"):
        seq = last_sent[writer.name]
        if seq is None:
            continue
        persisted = seq < writer.next_n
        status, headers = await send(session, streams, writer, seq)
        assert status == (204 if persisted else 200), f"{writer.name} retry of #{seq} (persisted={persisted}): {status}"
        assert headers.get("producer-seq") == str(seq), f"{writer.name} retry of #{seq}: {headers}"
        persisted_retries += persisted
        if not persisted:
            writer.appends[seq] = Append(next(run.clock), next(run.clock))
            writer.next_n = seq + 1
        tail = await head_next_offset(session, url)
        status, headers = await send(session, streams, writer, 0)
        assert status == 204 and headers.get("producer-seq") == str(seq), f"{writer.name} old seq 0: {status} {headers}"
        assert await head_next_offset(session, url) == tail, f"{writer.name}: a duplicate seq added data"
        status, headers = await send(session, streams, writer, seq + 2)
        assert status == 409, f"{writer.name} gap #{seq + 2}: {status}"
        assert headers.get("producer-expected-seq") == str(seq + 1), f"{writer.name} gap: {headers}"
        sent = Append(next(run.clock))
        status, headers = await send(session, streams, writer, seq + 1)
        assert status == 200 and headers.get("producer-seq") == str(seq + 1), f"{writer.name} next: {status}"
        sent.acked_at = next(run.clock)
        writer.appends[seq + 1] = sent
        writer.next_n = seq + 2
    return persisted_retries


async def create_streams(session: aiohttp.ClientSession, streams: Streams) -> None:
    for kind, content_type in CONTENT_TYPES.items():
        async with session.put(streams.url(kind), headers={"Content-Type": content_type}) as response:
            assert response.status == 201, f"PUT {streams.url(kind)}: {response.status} {await response.text()}"


async def power_cut_rounds(run: Run, rounds: int) -> Damage:
    """Start, load, cut, recover, verify up to `rounds` times on one disk; stops at the first damage."""
    total = Damage()
    async with aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session:
        streams = await run.start_origin()
        await create_streams(session, streams)
        if run.sync_after_create:
            await asyncio.to_thread(run.disk.sync)
        for number in range(1, rounds + 1):
            started = time.monotonic()
            captured, cut = await run.load_and_cut(session, streams)
            last_sent = {writer.name: writer.last_sent for writer in run.by_kind("p")}
            acknowledged = acked_total(run.writers)
            repairs = await asyncio.to_thread(run.disk.recover, captured)
            streams = await run.start_origin()
            damage, survived = await verify(session, streams, run)
            total.add(damage)
            print(
                f"  round {number}: {cut}; {acknowledged} acknowledged, {survived} survived, "
                f"{damage.counts()}; e2fsck repaired {repairs or 'nothing'} ({time.monotonic() - started:.1f} s)"
            )
            if not damage.clean():
                return total  # the writers' view no longer matches the disk: later rounds would only echo this
            retried = await check_producers(session, streams, run, last_sent)
            print(f"    producers: {retried} of {len(last_sent)} retried seqs had been persisted")
    run.started[-1].assert_loop_never_blocked()
    print(f"power loss (fsync={run.fsync}): {rounds} cuts, {acked_total(run.writers)} acknowledged, {total.counts()}")
    return total


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    require(missing_tools())
    (tmp_path / "power").mkdir()
    return tmp_path / "power"


def new_run(disk: PowerCutDisk, fsync: str, workdir: Path) -> Run:
    seed = random.randrange(2**32)
    print(f"\nseed={seed} fsync={fsync}")
    writers = [Writer(f"{kind}{i}") for kind, count in WRITERS.items() for i in range(count)]
    return Run(disk, fsync, workdir, writers, random.Random(seed))


@pytest.fixture
def disk(run_dir: Path) -> Iterator[PowerCutDisk]:
    with power_cut_disk(run_dir) as disk:
        yield disk


async def test_power_loss_keeps_every_acknowledged_append(disk: PowerCutDisk, run_dir: Path) -> None:
    run = new_run(disk, "always", run_dir)
    try:
        damage = await power_cut_rounds(run, ROUNDS)
    finally:
        run.stop_all()
    assert damage.clean(), f"damage after a power cut: {damage.summary()}"


async def test_power_loss_without_fsync_loses_acknowledged_appends(disk: PowerCutDisk, run_dir: Path) -> None:
    """The self-check: with --fsync never, acknowledged appends are only in the page cache, and a cut loses some."""
    run = new_run(disk, "never", run_dir)
    run.sync_after_create = True
    try:
        damage = await power_cut_rounds(run, 3)
    finally:
        run.stop_all()
    assert damage.lost, "no acknowledged append was lost without fsync: the capture did not drop the page cache"


def test_the_checks_find_torn_lost_duplicated_and_reordered_appends() -> None:
    """The verdicts the power-loss rounds rely on, on streams damaged on purpose."""
    b0, b1 = binary_unit("b0", 0), binary_unit("b0", 1)
    assert parse_binary(b0 + b1) == ([("b0", 0), ("b0", 1)], [])
    units, torn = parse_binary(b0 + b1[:-1])
    assert units == [("b0", 0)] and torn and "b0#1 is torn" in torn[0]
    assert parse_binary(b0 + b"\0" * 10)[1], "zeros after the last append (an unwritten block) are torn"
    n = next(n for n in itertools.count() if len(json_batch("j0", n)) > 1)
    j0, big = json_batch("j0", 0), json_batch("j0", n)
    assert parse_json(j0 + big) == ([("j0", 0), ("j0", n)], [])
    assert parse_json(j0 + big[:-1])[1], "a batch missing its last message is torn"
    assert parse_json(big[1:] + j0)[1], "a batch missing its first message is torn"

    writer = Writer("b0", {0: Append(0, 1), 1: Append(2, 3), 2: Append(4)})
    assert check_units([("b0", 0), ("b0", 1)], [writer]).clean()
    assert check_units([("b0", 0), ("b0", 1), ("b0", 2)], [writer]).clean(), "an unacknowledged append may survive"
    assert check_units([("b0", 0)], [writer]).lost == ["b0#1"]
    assert check_units([("b0", 0), ("b0", 1), ("b0", 1)], [writer]).duplicated
    assert check_units([("b0", 1), ("b0", 0)], [writer]).out_of_order
    assert check_units([("b0", 0), ("b0", 1), ("b0", 3)], [writer]).torn, "an append never sent"
    # Across writers: b1#0 was sent after b0#0 was acknowledged, so it cannot come first.
    other = Writer("b1", {0: Append(5, 6)})
    assert check_units([("b0", 0), ("b0", 1), ("b1", 0)], [writer, other]).clean()
    assert check_units([("b1", 0), ("b0", 0), ("b0", 1)], [writer, other]).out_of_order
