"""Pipelining never wedges a connection, with or without the fast lane (issue #11).

aiohttp stops reading a connection at 32 queued requests and resumes as its request loop drains
the queue; the fast lane drains it too and must resume reading likewise. Each test writes 1,000
requests in one write on one connection and reads the 1,000 answers back in order. Also: lane
answers appear in the access log and in the request metrics like aiohttp's, and `--fast-lane
false` turns the lane off.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.edge.conftest import Servers
from tests.edge.support import append, create, metric, scrape, until

BINARY = "application/octet-stream"
PIPELINED = 1000
#: Generous: 1,000 small answers take well under a second; a wedged connection never finishes.
ANSWER_TIMEOUT = 20.0
SLOW = 'If-None-Match: "no-such-etag"\r\n'  # an ordinary-way read with the same answer

pytestmark = pytest.mark.timeout(120)


def request(target: str, extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    assert length is not None, head  # every answer here has a length (no chunked bodies)
    return int(head[9:12]), await reader.readexactly(length)


async def pipeline(url: str, requests: list[bytes]) -> tuple[list[tuple[int, bytes]], float]:
    """All `requests` in one write on one connection; the answers in order and the seconds taken.

    Fails with how many answers came if the rest do not arrive within ANSWER_TIMEOUT.
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
    answers: list[tuple[int, bytes]] = []
    started = time.perf_counter()
    try:
        writer.write(b"".join(requests))
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while len(answers) < len(requests):
                answers.append(await read_answer(reader))
    except TimeoutError:
        raise AssertionError(f"{len(answers)} of {len(requests)} answers in {ANSWER_TIMEOUT} s: wedged") from None
    finally:
        writer.close()
    return answers, time.perf_counter() - started


async def chunk_targets(
    session: aiohttp.ClientSession, edge_url: str, path: str, count: int, size: int = 600
) -> list[str]:
    """`count` reads, each from the start of one cached chunk (`size` distinct bytes): lane-eligible.

    One more record follows them, so each of the chunks read is complete (and kept in memory).
    """
    start = await create(session, edge_url + path, BINARY)
    for i in range(count + 1):
        await append(session, edge_url + path, BINARY, bytes([ord("a") + i]) * size)
    targets = []
    offset = start
    for _ in range(count):
        target = f"{path}?offset={offset}"
        async with session.get(edge_url + target) as r:  # a miss: fills the edge's cache
            assert r.status == 200 and len(await r.read()) == size
            offset = r.headers["Stream-Next-Offset"]
        targets.append(target)
    return targets


async def expected_answers(edge_url: str, requests: list[bytes]) -> dict[bytes, tuple[int, bytes]]:
    """Each distinct request's answer, asked one at a time (no pipelining)."""
    out = {}
    for one in dict.fromkeys(requests):
        answers, _ = await pipeline(edge_url, [one])
        out[one] = answers[0]
    return out


async def test_a_thousand_pipelined_lane_reads_all_get_answers_in_order(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/pipelined", 4)
        requests = [request(targets[i % len(targets)]) for i in range(PIPELINED)]
        expected = await expected_answers(edge.url, requests)
        before = await scrape(session, edge.url)
        answers, seconds = await pipeline(edge.url, requests)
        after = await scrape(session, edge.url)
    print(f"{PIPELINED} pipelined lane reads answered in {seconds:.3f} s")
    assert answers == [expected[r] for r in requests]
    assert {status for status, _ in answers} == {200}
    lane = metric(after, "ds_edge_fast_lane_answers_total") - metric(before, "ds_edge_fast_lane_answers_total")
    assert lane == PIPELINED  # the lane took them all (this is its path being tested)
    counted = {"method": "GET", "route": "stream", "status": "200"}
    assert (
        metric(after, "ds_edge_http_requests_total", **counted)
        - metric(before, "ds_edge_http_requests_total", **counted)
        == PIPELINED
    )


async def test_a_thousand_pipelined_mixed_requests_all_get_answers_in_order(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url)
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/pipelined-mixed", 3)
        inside = targets[1].replace("_0000000000000600", "_0000000000000700")  # a slice: not the lane's
        assert inside != targets[1]
        kinds = [
            request(targets[0]),  # the lane
            request(targets[1]),
            request("/healthz"),  # aiohttp's
            request(targets[2]),
            request(targets[0], SLOW),  # a stream read the lane declines
            request(targets[1]),
            request(inside),  # declined: a slice of a cached chunk
            request(targets[2]),
            request(targets[2]),
        ]
        # The lane drains the first 100 (refilling aiohttp's queue as it goes), then declines one,
        # and aiohttp answers the rest in order.
        requests = [request(targets[i % 3]) for i in range(100)] + [kinds[i % len(kinds)] for i in range(900)]
        expected = await expected_answers(edge.url, requests)
        before = await scrape(session, edge.url)
        answers, seconds = await pipeline(edge.url, requests)
        after = await scrape(session, edge.url)
    print(f"{PIPELINED} pipelined mixed requests answered in {seconds:.3f} s")
    assert expected[request("/healthz")] == (200, b"ok\n") and len(expected[request(inside)][1]) == 500
    assert answers == [expected[r] for r in requests]
    lane = metric(after, "ds_edge_fast_lane_answers_total") - metric(before, "ds_edge_fast_lane_answers_total")
    assert 100 <= lane < PIPELINED  # both ways were taken
    for route, sent in (("stream", sum(b"/v1/stream/" in r for r in requests)), ("healthz", requests.count(kinds[2]))):
        counted = {"method": "GET", "route": route, "status": "200"}
        assert (
            metric(after, "ds_edge_http_requests_total", **counted)
            - metric(before, "ds_edge_http_requests_total", **counted)
            == sent
        )


async def test_a_thousand_requests_pipelined_behind_a_parked_long_poll_follow_it(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024", long_poll_timeout=5)
    edge = servers.edge(origin.url, long_poll_timeout=5)
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/behind-reads", 2)
        live = "/v1/stream/behind-poll"
        tail = await create(session, edge.url + live, BINARY)
        poll = request(f"{live}?offset={tail}&live=long-poll")
        reads = [request(targets[i % 2]) for i in range(PIPELINED)]
        expected = await expected_answers(edge.url, reads)
        parts = urlsplit(edge.url)
        starter_reader, starter = await asyncio.open_connection(parts.hostname, parts.port)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
        try:
            starter.write(poll)  # starts the shared poll
            await asyncio.sleep(0.2)
            writer.write(poll + b"".join(reads))  # parked on it, with 1,000 reads behind
            await asyncio.sleep(0.3)
            await append(session, origin.url + live, BINARY, b"one")
            answers = []
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while len(answers) < 1 + PIPELINED:
                    answers.append(await read_answer(reader))
            await read_answer(starter_reader)
        except TimeoutError:
            raise AssertionError(f"{len(answers)} of {1 + PIPELINED} answers in {ANSWER_TIMEOUT} s: wedged") from None
        finally:
            writer.close()
            starter.close()
        after = await scrape(session, edge.url)
    assert metric(after, "ds_edge_fast_lane_answers_total", kind="long_poll") == 2  # both were parked
    assert answers[0] == (200, b"one")
    assert answers[1:] == [expected[r] for r in reads]


async def test_a_client_that_does_not_read_is_not_answered_without_bound(servers: Servers) -> None:
    """Answers wait for the client to read them, as aiohttp's handlers do (no unbounded buffering)."""
    origin = servers.origin("--chunk-size", "65536")
    edge = servers.edge(origin.url)
    sent = 1000
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/unread", 1, size=60_000)
        counted = {"method": "GET", "route": "stream"}
        before = metric(await scrape(session, edge.url), "ds_edge_http_requests_total", **counted)
        parts = urlsplit(edge.url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(request(targets[0]) * sent)  # 60 MB of answers asked for, none read yet
            answered: list[float] = []

            async def settled() -> bool:
                answered.append(metric(await scrape(session, edge.url), "ds_edge_http_requests_total", **counted))
                return len(answered) > 5 and answered[-1] == answered[-6]  # unchanged for 5 scrapes

            await until(settled, 30, "the edge to stop answering a client that does not read", interval=0.1)
            unread = answered[-1] - before
            print(f"answered while the client did not read: {unread:.0f} of {sent}")
            async with asyncio.timeout(ANSWER_TIMEOUT):
                for _ in range(sent):
                    status, body = await read_answer(reader)
                    assert status == 200 and len(body) == 60_000
        finally:
            writer.close()
    # Socket buffers hold some (a few MB: ~100 answers); without the wait, all 1,000 went out.
    assert unread < sent / 2


ACCESS_LINE = re.compile(
    r'method=GET path="(?P<path>[^"]*)" query="(?P<query>[^"]*)" status=(?P<status>\d+) bytes=(?P<bytes>\d+) '
    r"duration_ms=\d+\.\d\d remote=127\.0\.0\.1$"
)


async def test_lane_answers_are_in_the_access_log_like_any_other(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url, "--access-log", "true")
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/logged", 2)
        requests = [request(targets[i % 2], SLOW if i % 10 == 9 else "") for i in range(100)]
        before = await scrape(session, edge.url)
        answers, _ = await pipeline(edge.url, requests)
        after = await scrape(session, edge.url)
    assert len(answers) == 100
    lane = metric(after, "ds_edge_fast_lane_answers_total") - metric(before, "ds_edge_fast_lane_answers_total")
    assert lane > 0  # some were the lane's: their lines are checked below

    def logged() -> list[re.Match[str]]:
        lines = edge.log_path.read_text(errors="replace").splitlines()
        found = (ACCESS_LINE.search(line) for line in lines if "/v1/stream/logged" in line)
        return [m for m in found if m is not None]

    await until(lambda: len(logged()) >= 2 + 100, 10, "100 access-log lines")
    lines = logged()[2:]  # after the two reads that filled the cache
    assert len(lines) == 100
    for line, target in zip(lines, [targets[i % 2] for i in range(100)], strict=True):
        path, query = target.split("?")
        assert (line["path"], line["query"], line["status"], line["bytes"]) == (path, query, "200", "600")


async def test_fast_lane_false_turns_the_lane_off(servers: Servers) -> None:
    origin = servers.origin("--chunk-size", "1024")
    edge = servers.edge(origin.url, "--fast-lane", "false")
    async with aiohttp.ClientSession() as session:
        targets = await chunk_targets(session, edge.url, "/v1/stream/no-lane", 2)
        requests = [request(targets[i % 2]) for i in range(PIPELINED)]
        expected = await expected_answers(edge.url, requests)
        answers, _ = await pipeline(edge.url, requests)
        after = await scrape(session, edge.url)
    assert answers == [expected[r] for r in requests]
    assert metric(after, "ds_edge_fast_lane_answers_total") == 0
    # Counted once each: the reads that filled the cache, the expected answers and the pipelined ones.
    assert metric(after, "ds_edge_http_requests_total", method="GET", route="stream") == 2 + 2 + PIPELINED
