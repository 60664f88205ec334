"""Whole-stream catch-up for bench/speed.py: fill a stream with 100-byte messages, walk it once in
Python and check every message came back, then walk it for a fixed time on N connections with
bench/walk_reader.c.

A walk starts at an offset (``-1``: the start), follows ``Stream-Next-Offset`` until a response
says ``Stream-Up-To-Date``, and starts again. Our origin answers in chunks (64 KiB by default),
Node answers everything up to the tail at once: walking to the end makes both comparable. The
same walk from the tail offset, which answers at once with no bytes, is the empty tail read.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import compare_origin as co
import live_client

MESSAGE_BYTES = 100
STREAM_BYTES = 1 << 20
STREAM_MESSAGES = -(-STREAM_BYTES // MESSAGE_BYTES)  # 10,486 messages: the stream holds at least 1 MiB
FILL_CONNECTIONS = 16  # binary messages are one POST each: written on 16 connections
JSON_FILL_BATCH = 100  # JSON messages go 100 to a POST (a JSON array is stored as its elements)
MAX_GETS_PER_WALK = 100_000
WALKER_SOURCE = Path(__file__).resolve().parent / "walk_reader.c"


def message(i: int, content_type: str) -> bytes:
    """Message number i: exactly 100 bytes, unique, so a walk's content can be checked."""
    if content_type == co.BINARY_CT:
        return f"{i:010d}|".encode().ljust(MESSAGE_BYTES, b"b")
    head = f'{{"i":{i},"pad":"'
    return (head + "x" * (MESSAGE_BYTES - len(head) - 2) + '"}').encode()


@dataclass
class Stream:
    """A filled stream and what a verified walk of it gave."""

    path: str
    content_type: str
    messages: list[bytes]
    tail: str = ""  # Stream-Next-Offset of the walk's last answer
    walk_bytes: int = 0  # body bytes of one walk from -1 to the tail
    gets_per_walk: int = 0


def fill(url: str, path: str, content_type: str, count: int = STREAM_MESSAGES) -> Stream:
    """Create the stream and append `count` messages (binary on 16 connections, in any order;
    JSON in order, 100 a POST)."""
    stream = Stream(path, content_type, [message(i, content_type) for i in range(count)])
    http_ = co.Http(url)
    try:
        co.create_stream(http_, path, content_type)
        if content_type != co.BINARY_CT:
            for start in range(0, count, JSON_FILL_BATCH):
                batch = b"[" + b",".join(stream.messages[start : start + JSON_FILL_BATCH]) + b"]"
                _append(http_, path, content_type, batch)
            return stream
    finally:
        http_.close()

    def write_share(first: int) -> None:
        conn = co.Http(url)
        try:
            for body in stream.messages[first::FILL_CONNECTIONS]:
                _append(conn, path, content_type, body)
        finally:
            conn.close()

    with ThreadPoolExecutor(FILL_CONNECTIONS) as pool:
        for done in [pool.submit(write_share, first) for first in range(FILL_CONNECTIONS)]:
            done.result()
    return stream


def _append(http_: co.Http, path: str, content_type: str, body: bytes) -> None:
    status, _, answer = http_.request("POST", path, body=body, headers={"Content-Type": content_type})
    if status not in (200, 204):
        raise RuntimeError(f"fill append -> {status} {answer[:200]!r}")


def walk_once(url: str, path: str, start: str = "-1") -> tuple[list[bytes], str]:
    """One walk from `start` to the tail: the bodies, and the last Stream-Next-Offset."""
    http_ = co.Http(url)
    bodies: list[bytes] = []
    offset = start
    try:
        for _ in range(MAX_GETS_PER_WALK):
            status, headers, body = http_.request("GET", f"{path}?offset={quote(offset, safe='')}")
            if status != 200:
                raise RuntimeError(f"catch-up GET at offset {offset} -> {status} {body[:200]!r}")
            bodies.append(body)
            following = headers.get("stream-next-offset", "")
            if headers.get("stream-up-to-date", "").lower() == "true":
                return bodies, following
            if not following or following == offset:
                raise RuntimeError(f"catch-up GET at offset {offset}: no progress (next offset {following!r})")
            offset = following
    finally:
        http_.close()
    raise RuntimeError(f"no Stream-Up-To-Date after {MAX_GETS_PER_WALK} GETs")


def walk_problem(bodies: list[bytes], stream: Stream) -> str | None:
    """What is wrong with a walk's bodies given what was written (None: every message came back,
    once; binary messages in any order, since they were written on several connections)."""
    if stream.content_type == co.BINARY_CT:
        data = b"".join(bodies)
        if len(data) != len(stream.messages) * MESSAGE_BYTES:
            return f"the walk returned {len(data):,} bytes, {len(stream.messages) * MESSAGE_BYTES:,} were written"
        got = sorted(data[i : i + MESSAGE_BYTES] for i in range(0, len(data), MESSAGE_BYTES))
        return None if got == sorted(stream.messages) else "the walk's messages differ from those written"
    items: list[Any] = []
    for body in bodies:
        if body.strip():
            items.extend(json.loads(body))
    if len(items) != len(stream.messages):
        return f"the walk returned {len(items):,} JSON messages, {len(stream.messages):,} were written"
    written = [json.loads(m) for m in stream.messages]
    return None if items == written else "the walk's JSON messages differ from those written (or their order)"


def verify(url: str, stream: Stream) -> None:
    """Walk the stream once from -1 at `url`, check its content, and keep what the walker checks
    against: the tail offset and the bytes of one walk (JSON arrays included)."""
    bodies, tail = walk_once(url, stream.path)
    problem = walk_problem(bodies, stream)
    if problem:
        raise RuntimeError(f"{stream.path} at {url}: {problem}")
    stream.tail, stream.walk_bytes, stream.gets_per_walk = tail, sum(map(len, bodies)), len(bodies)


def walker_binary() -> Path:
    return live_client.build_native(WALKER_SOURCE, ("-pthread",))


def run_walker(
    url: str,
    stream: Stream,
    conns: int,
    seconds: float,
    pinning: co.Pinning,
    procs: dict[str, int],
    raw_path: Path,
    *,
    from_tail: bool = False,
    expected: int | None = None,
) -> dict[str, Any]:
    """Walk `stream` at `url` on `conns` connections for `seconds`; the walker's WALK_RESULT plus
    the CPU seconds of each server process in `procs` and of the walker ("load") over the run.

    `from_tail`: every walk starts at the tail (the empty tail read). `expected` overrides the
    body bytes a walk must total (tests feed a wrong one to see the walks fail)."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise SystemExit("the walker talks to 127.0.0.1 only")
    start = stream.tail if from_tail else "-1"
    want = expected if expected is not None else (0 if from_tail else stream.walk_bytes)
    cmd = [*pinning.load_prefix(), str(walker_binary()), parts.hostname, str(parts.port), str(conns)]
    cmd += [f"{seconds:g}", stream.path, start, stream.tail, str(want)]
    before = {name: co._proc_cpu_seconds(pid) for name, pid in procs.items()}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = {name: co._proc_cpu_seconds(pid) for name, pid in procs.items()}
    raw_path.write_text(" ".join(cmd) + "\n\n" + done.stdout + "\n--- stderr ---\n" + done.stderr)
    match = re.search(r"^WALK_RESULT (\{.*\})$", done.stdout, re.M)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"walker failed (exit {done.returncode}): {done.stderr.strip()[:300]} (see {raw_path})")
    result: dict[str, Any] = json.loads(match.group(1))
    cpu: dict[str, float | None] = {}
    for name in procs:
        a, b = before[name], after[name]
        cpu[name] = b - a if a is not None and b is not None else None
    cpu["load"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    result.update(cpu_s=cpu, wall_s=wall, expected_bytes=want)
    return result


def walker_problems(r: dict[str, Any]) -> list[str]:
    """The walker's failed checks, as sentences (empty: every response and walk was right)."""
    problems = []
    if r["walks_bad"]:
        problems.append(
            f"{r['walks_bad']} bad walks of {r['walks_good'] + r['walks_bad']}: {r['bad_status']} non-200 "
            f"(first {r['first_bad_status']}), {r['bad_size']} with a total other than {r['expected_bytes']:,} "
            f"bytes, {r['bad_tail']} ending at another tail, {r['no_progress']} stuck"
        )
    if r["socket_errors"]:
        problems.append(f"{r['socket_errors']} broken connections ({r['reconnects']} reconnects)")
    if not r["walks_good"]:
        problems.append("no complete, verified walk")
    return problems
