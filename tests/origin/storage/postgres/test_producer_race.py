"""Two origins on one database, one stream: a producer's retry racing its original through the other origin.

Real origin processes on the postgres engine. Each producer sends every seq to BOTH origins at
once, as a client does whose first attempt timed out and whose retry went to another host while
the first was still on its way; now and then it also repeats an older seq. Meanwhile writers
without producer headers append through both origins in turn. The database decides each append
at commit time (ds_append), so exactly one of each racing pair writes: 200, the other 204 (a
duplicate), and the stream holds every seq exactly once, in order, whichever origin reads it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from plugin_streams.shared.aio.tasks import cancel_all, spawn
from plugin_streams.shared.headers import (
    CONTENT_TYPE,
    PRODUCER_EPOCH,
    PRODUCER_ID,
    PRODUCER_SEQ,
    STREAM_CLOSED,
    STREAM_NEXT_OFFSET,
    STREAM_UP_TO_DATE,
)
from tests.support.two_origins import TwoOrigins

pytestmark = pytest.mark.timeout(120)

PRODUCERS = 8
SEQS = 25
PLAIN_WRITERS = 2
PLAIN_APPENDS = 30
#: Chance that a producer, after a seq is acknowledged, repeats one of its older seqs (a late retry).
LATE_RETRY = 0.3
CONFLICTS = "ds_pg_append_conflicts_total"
TOKEN = re.compile(r"\[([a-z]\d*):(\d+)\]")
#: A stream's content type and how a writer (who, seq) turns into one append's body.
Format = tuple[str, Callable[[str, int], bytes]]


@dataclass
class Outcomes:
    """What the origins answered, collected by every writer of one test."""

    pairs: list[tuple[str, list[int]]] = field(default_factory=list)  # (who:seq, sorted statuses of the pair)
    late: Counter[int] = field(default_factory=Counter)  # statuses of late retries of older seqs
    plain: Counter[int] = field(default_factory=Counter)
    written_offsets: list[str] = field(default_factory=list)  # Stream-Next-Offset of every append that wrote
    per_writer_offsets: dict[str, list[str]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # unexpected answers, with their body


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> aiohttp.ClientResponse:
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response


def _producer_headers(producer: str, seq: int, content_type: str) -> dict[str, str]:
    return {CONTENT_TYPE: content_type, PRODUCER_ID: producer, PRODUCER_EPOCH: "0", PRODUCER_SEQ: str(seq)}


async def _producer(
    session: aiohttp.ClientSession, urls: tuple[str, str], who: str, body_of: Format, out: Outcomes
) -> None:
    """Each seq to both origins at once; after the pair, sometimes an older seq again to either one."""
    content_type, encode = body_of
    rng = random.Random(who)
    offsets = out.per_writer_offsets.setdefault(who, [])
    for seq in range(SEQS):
        headers = _producer_headers(who, seq, content_type)
        replies = await asyncio.gather(*(_post(session, url, encode(who, seq), headers) for url in urls))
        out.pairs.append((f"{who}:{seq}", sorted(r.status for r in replies)))
        for reply in replies:
            if reply.status == 200:
                offsets.append(reply.headers[STREAM_NEXT_OFFSET])
                out.written_offsets.append(reply.headers[STREAM_NEXT_OFFSET])
            elif reply.status == 204 and reply.headers.get(PRODUCER_SEQ) != str(seq):
                out.bad.append(f"{who}:{seq} duplicate names Producer-Seq {reply.headers.get(PRODUCER_SEQ)}")
        if seq > 0 and rng.random() < LATE_RETRY:
            older = rng.randrange(seq)
            headers = _producer_headers(who, older, content_type)
            late = await _post(session, rng.choice(urls), encode(who, older), headers)
            out.late[late.status] += 1
            if late.headers.get(PRODUCER_SEQ) != str(seq):  # a duplicate names the highest accepted seq
                out.bad.append(f"{who}: late retry of {older} named Producer-Seq {late.headers.get(PRODUCER_SEQ)}")


async def _plain_writer(
    session: aiohttp.ClientSession, urls: tuple[str, str], who: str, body_of: Format, out: Outcomes
) -> None:
    """Appends without producer headers, through the two origins in turn."""
    content_type, encode = body_of
    offsets = out.per_writer_offsets.setdefault(who, [])
    for i in range(PLAIN_APPENDS):
        reply = await _post(session, urls[i % 2], encode(who, i), {CONTENT_TYPE: content_type})
        out.plain[reply.status] += 1
        if reply.status == 204:
            offsets.append(reply.headers[STREAM_NEXT_OFFSET])
            out.written_offsets.append(reply.headers[STREAM_NEXT_OFFSET])


async def _conflicts(session: aiohttp.ClientSession, origins: TwoOrigins) -> float:
    """ds_pg_append_conflicts_total summed over both origins: how often the re-decision really ran."""
    total = 0.0
    for origin in origins.both:
        async with session.get(origin.url + "/metrics") as response:
            text = await response.text()
        total += sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(CONFLICTS))
    return total


async def _read_all(session: aiohttp.ClientSession, url: str, *, json_messages: bool) -> tuple[list[object], str]:
    """Every chunk of the stream from the start until it is up to date: (chunks, the final Next-Offset)."""
    chunks: list[object] = []
    offset = "-1"
    for _ in range(1000):
        async with session.get(url, params={"offset": offset}) as response:
            assert response.status == 200, (url, response.status, await response.text())
            body = await response.read()
            chunks += json.loads(body) if json_messages else [body]
            offset = response.headers[STREAM_NEXT_OFFSET]
            if response.headers.get(STREAM_UP_TO_DATE) == "true":
                return chunks, offset
    raise AssertionError(f"{url} never reached its tail")


def _text_body(who: str, seq: int) -> bytes:
    return f"[{who}:{seq}]".encode()


def _json_body(who: str, seq: int) -> bytes:
    return json.dumps({"who": who, "seq": seq}).encode()


TEXT: Format = ("text/plain", _text_body)
JSON: Format = ("application/json", _json_body)


async def _race(origins: TwoOrigins, path: str, body_of: Format) -> Outcomes:
    urls = (origins.a.stream_url + path, origins.b.stream_url + path)
    out = Outcomes()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.put(urls[0], headers={CONTENT_TYPE: body_of[0]}) as created:
            assert created.status == 201, await created.text()
        await asyncio.gather(
            *(_producer(session, urls, f"p{i}", body_of, out) for i in range(PRODUCERS)),
            *(_plain_writer(session, urls, f"w{i}", body_of, out) for i in range(PLAIN_WRITERS)),
        )
    return out


def _assert_answers(out: Outcomes) -> None:
    wrong_pairs = [(who, statuses) for who, statuses in out.pairs if statuses != [200, 204]]
    assert wrong_pairs == [], f"each racing pair must be one 200 and one 204: {wrong_pairs[:10]}"
    assert set(out.late) <= {204}, f"late retries of older seqs must be duplicates (204): {out.late}"
    assert out.plain == Counter({204: PLAIN_WRITERS * PLAIN_APPENDS}), out.plain
    assert out.bad == [], out.bad[:10]
    reused = [offset for offset, n in Counter(out.written_offsets).items() if n > 1]
    assert reused == [], f"offsets given to more than one append: {reused[:10]}"
    for who, offsets in out.per_writer_offsets.items():
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"{who}'s offsets go back: {offsets}"


def _assert_each_once_in_order(order: list[tuple[str, int]]) -> None:
    per_writer: dict[str, list[int]] = {}
    for who, seq in order:
        per_writer.setdefault(who, []).append(seq)
    expected = {f"p{i}": list(range(SEQS)) for i in range(PRODUCERS)}
    expected |= {f"w{i}": list(range(PLAIN_APPENDS)) for i in range(PLAIN_WRITERS)}
    assert per_writer == expected


async def test_racing_retries_through_two_origins_write_each_seq_exactly_once(two_origins: TwoOrigins) -> None:
    out = await _race(two_origins, "race/text", TEXT)
    _assert_answers(out)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        reads = [await _read_all(session, o.stream_url + "race/text", json_messages=False) for o in two_origins.both]
        (chunks_a, tail_a), (chunks_b, tail_b) = reads
        content = b"".join(chunks_a)  # type: ignore[arg-type]
        assert content == b"".join(chunks_b), "the two origins read different bytes"  # type: ignore[arg-type]
        assert tail_a == tail_b == max(out.written_offsets)
        order = [(who, int(seq)) for who, seq in TOKEN.findall(content.decode())]
        assert b"".join(_text_body(who, seq) for who, seq in order) == content, "bytes outside whole appends"
        _assert_each_once_in_order(order)
        # Every acknowledged offset is the end of exactly its own append: reading from it gives what followed.
        ends = {offset: i for i, offset in enumerate(sorted(out.written_offsets))}
        assert len(ends) == len(order)
        for offset, i in list(ends.items())[:: max(1, len(ends) // 40)]:
            async with session.get(two_origins.b.stream_url + "race/text", params={"offset": offset}) as response:
                rest = await response.read()
            expected = b"".join(_text_body(who, seq) for who, seq in order[i + 1 :])
            assert rest == expected, f"reading from {offset} (after append #{i}) gave {rest[:80]!r}"
        conflicts = await _conflicts(session, two_origins)
    # The losing half of a pair is refused by the database (ds_append) and decided again as a duplicate:
    # without conflicts the race never happened and the test proved nothing.
    assert conflicts > 0
    print(
        f"\nrace: {len(out.pairs)} racing pairs (200+204 each), late retries {dict(out.late)}, "
        f"{len(order)} appends, {conflicts:.0f} conflicts decided again"
    )


async def test_racing_retries_on_a_json_stream_keep_messages_whole_and_once(two_origins: TwoOrigins) -> None:
    out = await _race(two_origins, "race/json", JSON)
    _assert_answers(out)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        (messages_a, tail_a), (messages_b, tail_b) = [
            await _read_all(session, origin.stream_url + "race/json", json_messages=True) for origin in two_origins.both
        ]
    assert messages_a == messages_b
    assert tail_a == tail_b == max(out.written_offsets)
    _assert_each_once_in_order([(m["who"], m["seq"]) for m in messages_a])  # type: ignore[index]


async def test_a_close_racing_appends_through_the_other_origin_ends_the_stream(two_origins: TwoOrigins) -> None:
    """Appends through B never stop; A closes the stream: after the close is acknowledged every append
    gets 409 Stream-Closed naming the final offset, and the stream holds exactly the appends that got 204."""
    path = "race/close"
    url_a, url_b = two_origins.a.stream_url + path, two_origins.b.stream_url + path
    acknowledged: list[int] = []
    refused_after_close: Counter[int] = Counter()
    refused_offsets: set[str] = set()
    closed = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        async with session.put(url_a, headers={CONTENT_TYPE: "text/plain"}) as created:
            assert created.status == 201

        async def appender(first: int) -> None:
            i = first
            while True:
                sent_after_close = closed.is_set()
                reply = await _post(session, url_b, _text_body("w", i), {CONTENT_TYPE: "text/plain"})
                if reply.status == 204:
                    assert not sent_after_close, f"append {i} sent after the close was acknowledged got 204"
                    acknowledged.append(i)
                else:
                    assert reply.status == 409 and reply.headers.get(STREAM_CLOSED) == "true", reply.status
                    refused_offsets.add(reply.headers[STREAM_NEXT_OFFSET])
                    if sent_after_close:
                        refused_after_close[reply.status] += 1
                        if refused_after_close.total() >= 20:
                            return
                i += 1000

        writers = [spawn(appender(k), name=f"appender-{k}") for k in range(4)]
        try:
            await asyncio.sleep(0.5)  # appends are flowing through B
            async with session.post(url_a, headers={CONTENT_TYPE: "text/plain", STREAM_CLOSED: "true"}) as close:
                assert close.status == 204, await close.text()
                final = close.headers[STREAM_NEXT_OFFSET]
            closed.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*writers)
        finally:
            await cancel_all(writers)
        (chunks, tail) = await _read_all(session, url_a, json_messages=False)
    content = b"".join(chunks)  # type: ignore[arg-type]
    present = [int(seq) for _, seq in TOKEN.findall(content.decode())]
    assert sorted(present) == sorted(acknowledged), "the stream must hold exactly the acknowledged appends"
    assert len(set(present)) == len(present)
    assert tail == final and refused_offsets == {final}, (tail, final, refused_offsets)
    assert len(acknowledged) > 0
    print(f"\nclose race: {len(acknowledged)} appends before the close, {refused_after_close.total()} refused after")
