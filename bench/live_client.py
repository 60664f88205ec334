"""Light live-read load generator: N long-poll or SSE readers on one stream, one timed writer.

Run by compare_edge.py in its own process, pinned to the load-generator core::

    python bench/live_client.py --mode sse --url http://127.0.0.1:PORT --path /v1/stream/NAME \
        --offset <tail offset> --readers 10000 --appends 300 --interval 0.1

Built for thousands of connections in one Python process: plain non-blocking sockets, one
``select.epoll`` loop, no asyncio, and a minimal HTTP/1.1 response parser (Content-Length,
chunked, 204). Per reader:

* ``long-poll``: loops ``GET path?offset=O&live=long-poll[&cursor=C]`` on one keep-alive
  connection, re-issuing at once with the returned ``Stream-Next-Offset`` / ``Stream-Cursor``
  (this is the same reader as bench/longpoll_client.py, without asyncio);
* ``sse``: one ``GET path?offset=O&live=sse`` response, read as it streams. Only what the
  benchmark needs is parsed: blocks end at a blank line; ``event: data`` blocks have their
  ``data:`` lines joined and decoded as JSON (one cached parse per distinct block: the edge
  sends every subscriber the same bytes); ``event: control`` blocks give ``streamNextOffset``,
  ``streamCursor`` and ``streamClosed``; ``:`` comments (keep-alives) are counted. When a
  response ends (the server ends SSE responses every ~60 s) or the connection breaks, the
  reader resumes from its last ``streamNextOffset`` with its cursor, and counts a reconnect.

The stream must have content type application/json and be empty from ``--offset`` on. The
writer (on the same loop) appends ``{"i": k, "t": <send time, ns since the epoch>}`` to
``--write-url`` (default: ``--url``) every ``--interval`` seconds on a fixed schedule, waiting
for each acknowledgement (closed loop: if an append takes longer than the interval, the next one
goes out as soon as it is acknowledged).

Delivery latency = arrival time of the bytes completing message k - t. The arrival time is the
kernel's receive timestamp (``SO_TIMESTAMPNS``, CLOCK_REALTIME like ``time.time_ns()``) of the
``recvmsg`` that read those bytes, so time the client spends on other sockets is not counted.
For TCP the kernel reports the timestamp of the newest segment the call consumed (and
segments waiting unread in the receive queue are merged, keeping the newest timestamp): if the
client falls behind, messages that arrived earlier get a later time. The figure is therefore an
upper bound, never flattering to the server. ``multi_message_recvs`` counts reads that carried
more than one message, and ``latency_user_ms`` (the time the client got to the socket) is
reported too.

Per reader, messages are tracked in a bitmap: ``missed`` = readers x messages in the stream -
distinct messages received (the stream is read back at the end), ``duplicates`` = messages a
reader got twice. Phases (``ready`` just before the first append, ``written`` right after the
last acknowledgement, ``drained`` after the last delivery, ``closed`` after the readers have
gone) are time-stamped; at each one the client reads the RSS, CPU time and fd count of processes
(``--watch-pid name=PID``) and scrapes Prometheus endpoints (``--scrape name=URL``; at
``written`` only the ones named in ``--written-scrape``, since deliveries may still be under
way). After the readers close, one extra ``{"poke": true}`` message is appended (it is not
counted): it makes a server notice the connections that went away, so the ``closed`` scrape
shows whether live handlers were left behind.

With ``--native-readers`` (SSE only), the readers are bench/sse_readers.c, compiled here with
gcc on first use: the same readers in C, driven by this process, which keeps the writer, the
phases and the scrapes. 10,000 SSE readers at 10 events/s are 100,000 deliveries a second, more
than this Python loop can parse on one core; behind, it would time its own backlog.

Prints one line ``LIVE_RESULT {json}`` on stdout. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import http.client
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from array import array
from pathlib import Path
from urllib.parse import quote, urlsplit

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 = SO_TIMESTAMPNS_OLD on x86-64/arm64
ANC_SIZE = socket.CMSG_SPACE(16)
RECV_SIZE = 256 * 1024
MAX_HEAD = 65536
MAX_BODY = 8 * 1024 * 1024
MAX_ERRORS_PER_READER = 50
MAX_RECONNECTS_PER_READER = 20
MAX_CACHE = 4096
EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR, select.EPOLLHUP

_HEADER_RE = re.compile(
    rb"\r\n(content-length|transfer-encoding|stream-next-offset|stream-cursor|stream-closed|connection)"
    rb"[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)
_NEXT_RE = re.compile(rb'"streamNextOffset"\s*:\s*"([^"]*)"')
_CURSOR_RE = re.compile(rb'"streamCursor"\s*:\s*"?([^",}]*)')
_CLOSED_RE = re.compile(rb'"streamClosed"\s*:\s*true')
_SAFE_RE = re.compile(r"^[A-Za-z0-9_.~-]*$")

NATIVE_SOURCE = Path(__file__).resolve().parent / "sse_readers.c"
NATIVE_BUILD = Path(__file__).resolve().parent / ".build"
NATIVE_READER_KEYS = [
    "readers",
    "expected_deliveries",
    "deliveries",
    "missed",
    "duplicates",
    "readers_with_missed",
    "readers_with_duplicates",
    "max_missed_per_reader",
    "max_duplicates_per_reader",
    "readers_incomplete",
    "stuck_examples",
    "readers_ready",
    "never_stored_but_received",
    "status_errors",
    "bad_bodies",
    "bad_responses",
    "foreign_messages",
    "reconnects",
    "connect_failures",
    "responses_200",
    "responses_204",
    "sse_responses_ended",
    "keepalives",
    "recvs",
    "multi_message_recvs",
    "kernel_timestamps",
    "latency_ms",
    "latency_user_ms",
]

# parser states
HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER = range(6)


def _q(value: str) -> str:
    return value if _SAFE_RE.match(value) else quote(value, safe="")


def _messages(payload: bytes) -> tuple | None:
    """(i, t) pairs of the benchmark messages in a JSON array; None if it is not one."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    out = []
    for m in doc if isinstance(doc, list) else ():
        if isinstance(m, dict):
            i, t = m.get("i"), m.get("t")
            if isinstance(i, int) and isinstance(t, int):
                out.append((i, t))
            elif m.get("poke"):
                out.append((-1, 0))
            else:
                out.append((-2, 0))
    return tuple(out)


class Conn:
    """One connection: a reader (long-poll or SSE) or the writer. HTTP/1.1, no pipelining."""

    __slots__ = (
        "bench",
        "body",
        "buf",
        "closed",
        "complete",
        "connecting",
        "cursor",
        "done",
        "dups",
        "errors",
        "ev",
        "fd",
        "headers",
        "idx",
        "is_writer",
        "last_status",
        "n_seen",
        "offset",
        "pending",
        "ready",
        "reconnects",
        "remaining",
        "seen",
        "sock",
        "state",
        "status",
        "tk",
        "tu",
    )

    def __init__(self, bench: Bench, idx: int, offset: str, is_writer: bool = False) -> None:
        self.bench = bench
        self.idx = idx
        self.sock: socket.socket | None = None
        self.fd = -1
        self.connecting = False
        self.closed = True
        self.state = HEAD
        self.buf = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.remaining = 0
        self.body: list[bytes] = []
        self.ev = bytearray()
        self.tk = 0
        self.tu = 0
        self.offset = offset
        self.cursor: str | None = None
        self.seen = bytearray(bench.appends) if not is_writer else bytearray()
        self.n_seen = 0
        self.dups = 0
        self.errors = 0
        self.reconnects = 0
        self.done = False
        self.ready = False
        self.complete = False
        self.last_status = 0
        self.is_writer = is_writer
        self.pending: bytes | None = None  # request to send once connected

    # -- socket ----------------------------------------------------------------------------

    def open(self, request: bytes | None) -> None:
        b = self.bench
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        err = sock.connect_ex(b.w_addr if self.is_writer else (b.host, b.port))
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(err, "connect failed")
        self.sock, self.fd = sock, sock.fileno()
        self.closed = False
        self.connecting = True
        self.state = HEAD
        self.buf.clear()
        self.ev.clear()
        self.body = []
        self.pending = request
        b.conns[self.fd] = self
        b.ep.register(self.fd, EPOLLOUT | EPOLLERR | EPOLLHUP)

    def on_event(self, mask: int) -> None:
        if self.connecting:
            assert self.sock is not None
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.lost(OSError(err, "connect"))
                return
            self.connecting = False
            self.bench.ep.modify(self.fd, EPOLLIN | EPOLLERR | EPOLLHUP)
            if self.pending is not None:
                data, self.pending = self.pending, None
                self.send(data)
            return
        self.readable()

    def send(self, data: bytes) -> None:
        if self.sock is None or self.closed:
            return
        if self.connecting:
            self.pending = data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.lost(exc)
            return
        if sent < len(data):  # a small request on an idle connection: not expected
            try:
                self.sock.setblocking(True)
                self.sock.settimeout(5)
                self.sock.sendall(data[sent:])
                self.sock.setblocking(False)
            except OSError as exc:
                self.lost(exc)

    def close(self) -> None:
        if self.sock is not None and not self.closed:
            self.closed = True
            self.connecting = False
            b = self.bench
            try:
                b.ep.unregister(self.fd)
            except (OSError, ValueError):
                pass
            b.conns.pop(self.fd, None)
            self.sock.close()
            self.sock = None
            self.fd = -1

    def lost(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.close()
        self.bench.on_lost(self, exc)

    # -- receiving -------------------------------------------------------------------------

    def readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data, anc, _flags, _addr = sock.recvmsg(RECV_SIZE, ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(exc)
            return
        if not data:
            self.lost(None)
            return
        self.tu = tu = time.time_ns()
        tk = 0
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack_from("qq", payload)
                tk = sec * 1_000_000_000 + nsec
        self.tk = tk or tu
        if tk:
            self.bench.kernel_stamps += 1
        b = self.bench
        b.recvs += 1
        b.recv_msgs = 0
        if self.state == CHUNK_SIZE and not self.buf and b.sse and self.status == 200 and not self.is_writer:
            # Fast path for a streaming SSE response: whole chunks, parsed straight from `data`.
            pos, n = 0, len(data)
            for _ in range(100_000):
                i = data.find(b"\r\n", pos)
                if i < 0:
                    break
                try:
                    size = int(data[pos:i], 16)
                except ValueError:
                    break  # (chunk extensions): the general parser handles it
                end = i + 2 + size
                if size == 0 or end + 2 > n:
                    break
                b.sse_feed(self, data[i + 2 : end])
                pos = end + 2
            if pos == n:
                if b.recv_msgs > 1:
                    b.multi_message_recvs += 1
                return
            data = data[pos:]
        self.buf += data
        try:
            self.parse()
        except (ValueError, IndexError) as exc:
            print(f"live_client: bad response on reader {self.idx}: {exc!r}", file=sys.stderr)
            b.bad_responses += 1
            self.lost(exc)
        if b.recv_msgs > 1:
            b.multi_message_recvs += 1

    def parse(self) -> None:
        buf = self.buf
        while buf and not self.closed:
            state = self.state
            if state == HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ValueError("response head too large")
                    return
                head = bytes(buf[: end + 2])
                del buf[: end + 4]
                self.status = status = int(head[9:12])
                self.headers = hdrs = {
                    m.group(1).lower().decode(): m.group(2).strip().decode("latin-1") for m in _HEADER_RE.finditer(head)
                }
                self.body = []
                if status in (204, 304) or 100 <= status < 200:
                    self.state = HEAD
                    self.finish(b"")
                elif hdrs.get("transfer-encoding", "").lower() == "chunked":
                    self.state = CHUNK_SIZE
                elif "content-length" in hdrs:
                    self.remaining = int(hdrs["content-length"])
                    if self.remaining > MAX_BODY:
                        raise ValueError("body too large")
                    self.state = BODY
                    if self.remaining == 0:
                        self.state = HEAD
                        self.finish(b"")
                else:
                    raise ValueError("response without length (read-until-close is not supported)")
            elif state == BODY:
                n = min(len(buf), self.remaining)
                piece = bytes(buf[:n])
                del buf[:n]
                self.remaining -= n
                self.on_body(piece)
                if self.remaining == 0:
                    self.state = HEAD
                    self.finish(b"".join(self.body))
            elif state == CHUNK_SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    if len(buf) > 1024:
                        raise ValueError("bad chunk size line")
                    return
                size = int(bytes(buf[:i]).split(b";")[0], 16)
                del buf[: i + 2]
                if size == 0:
                    self.state = TRAILER
                else:
                    if size > MAX_BODY:
                        raise ValueError("chunk too large")
                    self.remaining = size
                    self.state = CHUNK_DATA
            elif state == CHUNK_DATA:
                n = min(len(buf), self.remaining)
                piece = bytes(buf[:n])
                del buf[:n]
                self.remaining -= n
                self.on_body(piece)
                if self.remaining == 0:
                    self.state = CHUNK_CRLF
            elif state == CHUNK_CRLF:
                if len(buf) < 2:
                    return
                del buf[:2]
                self.state = CHUNK_SIZE
            else:  # TRAILER: lines until an empty one
                i = buf.find(b"\r\n")
                if i < 0:
                    return
                line_empty = i == 0
                del buf[: i + 2]
                if line_empty:
                    self.state = HEAD
                    self.finish(b"".join(self.body))

    # -- reader/writer logic ---------------------------------------------------------------

    def on_body(self, piece: bytes) -> None:
        b = self.bench
        if b.sse and not self.is_writer and self.status == 200:
            b.sse_feed(self, piece)
        else:
            self.body.append(piece)

    def finish(self, body: bytes) -> None:
        self.bench.on_response(self, self.status, self.headers, body)


class NativeReaders:
    """The readers as a child process (bench/sse_readers.c; it inherits this one's CPU pinning)."""

    def __init__(self, args) -> None:
        binary = build_native()
        parts = urlsplit(args.url)
        cmd = [
            str(binary),
            "--host",
            parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 80),
            "--path",
            args.path,
            "--offset",
            args.offset,
            "--readers",
            str(args.readers),
            "--appends",
            str(args.appends),
            "--connect-batch",
            str(args.connect_batch),
            "--connect-timeout",
            str(args.connect_timeout),
            "--drain",
            str(args.drain),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def expect(self, word: str) -> list[str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            self.proc.kill()
            raise RuntimeError(f"native readers said {line!r}, expected {word} (exit {self.proc.poll()})")
        return line.split()[1:]

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def cpu_s(self) -> float:
        return _proc_info(self.proc.pid).get("cpu_s", 0.0)

    def finish(self, stored: set[int]) -> dict:
        self.tell("STORED " + ",".join(str(i) for i in sorted(stored)))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=30)
        if not line.startswith("RESULT "):
            raise RuntimeError(f"native readers ended with {line!r}")
        return json.loads(line[len("RESULT ") :])


def build_native(source: Path = NATIVE_SOURCE, flags: tuple[str, ...] = ("-lm",)) -> Path:
    """bench/.build/<source's name> (sse_readers by default), rebuilt when the source is newer."""
    binary = NATIVE_BUILD / source.stem
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        NATIVE_BUILD.mkdir(exist_ok=True)
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(binary), str(source), *flags], check=True, stdin=subprocess.DEVNULL
        )
    return binary


class Bench:
    def __init__(self, args) -> None:
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.hostport = parts.netloc
        wparts = urlsplit(args.write_url or args.url)
        self.w_addr = (wparts.hostname or "127.0.0.1", wparts.port or 80)
        self.w_hostport = wparts.netloc
        self.path = args.path
        self.args = args
        self.sse = args.mode == "sse"
        self.live = "sse" if self.sse else "long-poll"
        self.appends = args.appends
        self.target = args.appends
        self.ep = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.readers: list[Conn] = []
        self.timers: list = []
        self._tseq = 0
        self.stopping = False
        self.lat = array("q")
        self.lat_user = array("q")
        self.kernel_stamps = 0
        self.recvs = 0
        self.multi_message_recvs = 0
        self.recv_msgs = 0
        self.status_errors: dict[int, int] = {}
        self.bad_bodies = 0
        self.bad_responses = 0
        self.foreign = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.responses_200 = 0
        self.responses_204 = 0
        self.sse_responses_ended = 0
        self.keepalives = 0
        self.ready_count = 0
        self.complete_count = 0
        self.cache: dict[bytes, tuple] = {}  # SSE block -> classify() result
        self.body_cache: dict[bytes, tuple | None] = {}  # long-poll body -> messages
        self.phases: dict[str, dict] = {}
        # writer
        self.writer: Conn | None = None
        self.w_k = 0
        self.w_t0 = 0.0
        self.w_waiting = False
        self.w_sent_ns = 0
        self.w_sent_mono = 0.0
        self.w_lat = array("q")
        self.w_errors: dict[str, int] = {}
        self.write_times: list[float] = []
        self.writer_gave_up = False
        self.writing = False
        self.w_give_up = 0.0
        self.poke_status: int | None = None

    # -- timers and the loop ---------------------------------------------------------------

    def call_later(self, delay: float, fn, *a) -> None:
        self._tseq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._tseq, fn, a))

    def pump(self, until=None, deadline: float | None = None) -> bool:
        """Run the loop until `until()` is true (returns True) or `deadline` passes (False)."""
        ep, conns, timers = self.ep, self.conns, self.timers
        for _ in range(100_000_000):
            if until is not None and until():
                return True
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            wait = 0.05
            if deadline is not None:
                wait = min(wait, deadline - now)
            if timers:
                wait = min(wait, timers[0][0] - now)
            if self.writing and not self.w_waiting:
                wait = min(wait, self.w_t0 + self.w_k * self.args.interval - now)
            events = ep.poll(max(wait, 0), len(conns) + 8)
            for n, (fd, mask) in enumerate(events):
                c = conns.get(fd)
                if c is not None:
                    c.on_event(mask)
                if self.writing and n & 255 == 255:
                    self.writer_tick()
            if self.writing:
                self.writer_tick()
            if timers:
                now = time.monotonic()
                for _ in range(100_000):
                    if not timers or timers[0][0] > now:
                        break
                    _, _, fn, a = heapq.heappop(timers)
                    fn(*a)
        return False

    # -- readers ---------------------------------------------------------------------------

    def request_bytes(self, r: Conn) -> bytes:
        target = f"{self.path}?offset={_q(r.offset)}&live={self.live}"
        if r.cursor is not None:
            target += f"&cursor={_q(r.cursor)}"
        return f"GET {target} HTTP/1.1\r\nHost: {self.hostport}\r\n\r\n".encode("latin-1")

    def request(self, r: Conn) -> None:
        if self.stopping or r.done or r.closed:
            return
        r.send(self.request_bytes(r))

    def record(self, r: Conn, msgs: tuple) -> int:
        """Count the messages of one response/event for reader r; returns how many were benchmark ones."""
        seen = r.seen
        tk, tu = r.tk, r.tu
        lat, lat_user = self.lat, self.lat_user
        n = 0
        for i, t in msgs:
            if i < 0:
                if i == -2:
                    self.foreign += 1
                continue
            if i >= len(seen):
                self.foreign += 1
                continue
            n += 1
            self.recv_msgs += 1
            if seen[i]:
                r.dups += 1
                continue
            seen[i] = 1
            r.n_seen += 1
            lat.append(tk - t)
            lat_user.append(tu - t)
        if not r.complete and r.n_seen >= self.target:
            r.complete = True
            self.complete_count += 1
        return n

    def parsed(self, body: bytes) -> tuple | None:
        """Messages of a long-poll body (cached: many readers get the same bytes)."""
        cache = self.body_cache
        msgs = cache.get(body, False)
        if msgs is False:
            msgs = _messages(body)
            if len(cache) >= MAX_CACHE:
                cache.clear()
            cache[body] = msgs
        return msgs  # type: ignore[return-value]

    def sse_feed(self, r: Conn, payload: bytes) -> None:
        """Events of an SSE body piece; a trailing partial block waits in r.ev for the next one."""
        if r.ev:
            r.ev += payload
            payload = bytes(r.ev)
            r.ev.clear()
        if b"\r" in payload:
            payload = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = payload.split(b"\n\n")
        rest = blocks.pop()
        if rest:
            r.ev += rest
        cache = self.cache
        for block in blocks:
            kind = cache.get(block)
            if kind is None:
                kind = self.classify(block)
            tag = kind[0]
            if tag == "d":
                if kind[1] is None:
                    self.bad_bodies += 1
                else:
                    self.record(r, kind[1])
            elif tag == "c":
                if kind[1]:
                    r.offset = kind[1]
                if kind[2]:
                    r.cursor = kind[2]
                if kind[3]:
                    r.done = True
                if not r.ready:
                    r.ready = True
                    self.ready_count += 1
            elif tag == "k":
                self.keepalives += 1

    def classify(self, block: bytes) -> tuple:
        """One SSE block -> ("d", messages) | ("c", next offset, cursor, closed) | ("k",) | ("o",); cached."""
        if not block:
            kind: tuple = ("o",)
        elif block[0] == 58:  # ":" comment (keep-alive)
            kind = ("k",)
        elif block.startswith((b"event: data", b"event:data")):
            lines = block.split(b"\n")
            payload = b"\n".join((ln[6:] if ln[5:6] == b" " else ln[5:]) for ln in lines if ln.startswith(b"data:"))
            kind = ("d", _messages(payload))
        elif block.startswith((b"event: control", b"event:control")):
            m = _NEXT_RE.search(block)
            c = _CURSOR_RE.search(block)
            kind = (
                "c",
                m.group(1).decode() if m else None,
                c.group(1).decode() if c else None,
                _CLOSED_RE.search(block) is not None,
            )
        else:
            kind = ("o",)
        if len(self.cache) >= MAX_CACHE:
            self.cache.clear()
        self.cache[block] = kind
        return kind

    def on_response(self, c: Conn, status: int, headers: dict, body: bytes) -> None:
        if c.is_writer:
            self.on_writer_response(status)
            return
        r = c
        r.last_status = status
        if status == 200:
            self.responses_200 += 1
            if self.sse:
                self.sse_responses_ended += 1  # the server ended the SSE response
            elif body:
                msgs = self.parsed(body)
                if msgs is None:
                    self.bad_bodies += 1
                else:
                    self.record(r, msgs)
        elif status == 204:
            self.responses_204 += 1
        else:
            r.errors += 1
            self.status_errors[status] = self.status_errors.get(status, 0) + 1
        if status in (200, 204) and not self.sse:
            nxt = headers.get("stream-next-offset")
            if nxt:
                r.offset = nxt
            cur = headers.get("stream-cursor")
            if cur:
                r.cursor = cur
            if headers.get("stream-closed", "").lower() == "true":
                r.done = True
        if r.errors > MAX_ERRORS_PER_READER:
            r.done = True
        if r.done or self.stopping:
            return
        if headers.get("connection", "").lower() == "close":
            return  # the server closes it: lost() reconnects
        if status in (200, 204):
            if self.sse:
                r.reconnects += 1  # a new SSE response on the same connection
                self.reconnects += 1
            self.request(r)
        else:
            self.call_later(0.2, self.request, r)

    def on_lost(self, c: Conn, exc) -> None:
        if c.is_writer:
            if self.w_waiting:
                self.w_errors["disconnect"] = self.w_errors.get("disconnect", 0) + 1
                self.w_waiting = False
            return
        if self.stopping or c.done:
            return
        c.reconnects += 1
        self.reconnects += 1
        if c.reconnects > MAX_RECONNECTS_PER_READER:
            c.done = True
            return
        self.call_later(0.05, self.reopen, c)

    def reopen(self, c: Conn) -> None:
        if self.stopping or c.done:
            return
        try:
            c.open(self.request_bytes(c))
        except OSError:
            self.connect_failures += 1
            c.done = True

    def open_readers(self, batch: int, deadline: float) -> None:
        self.readers = [Conn(self, i, self.args.offset) for i in range(self.args.readers)]
        for start in range(0, len(self.readers), batch):
            group = self.readers[start : start + batch]
            for r in group:
                try:
                    r.open(self.request_bytes(r))
                except OSError:
                    self.connect_failures += 1
                    r.done = True
            ok = self.pump(lambda g=group: all(not r.connecting for r in g), deadline)
            if not ok:
                print("live_client: connecting took too long", file=sys.stderr)
                return
            if not self.sse:
                for r in group:
                    if not r.closed and not r.ready:
                        r.ready = True
                        self.ready_count += 1

    # -- writer ----------------------------------------------------------------------------

    def writer_open(self) -> None:
        self.writer = Conn(self, -1, "", is_writer=True)
        self.writer.open(None)
        self.pump(lambda: not self.writer.connecting, time.monotonic() + 10)

    def writer_tick(self) -> None:
        now = time.monotonic()
        w = self.writer
        if w is None:
            return
        if self.w_waiting:
            if now - self.w_sent_mono > 10:
                self.w_errors["timeout"] = self.w_errors.get("timeout", 0) + 1
                self.w_waiting = False
                w.close()
            return
        if self.w_k >= self.appends:
            self.writing = False
            return
        if now > self.w_give_up:
            self.writer_gave_up = True
            self.writing = False
            return
        if now < self.w_t0 + self.w_k * self.args.interval:
            return
        if w.closed:
            try:
                w.open(None)
            except OSError:
                self.w_errors["connect"] = self.w_errors.get("connect", 0) + 1
                return
        k = self.w_k
        self.w_k += 1
        self.write_times.append(now)
        t = time.time_ns()
        body = b'{"i":%d,"t":%d,"pad":"%s"}' % (k, t, b"p" * 40)
        self.w_waiting = True
        self.w_sent_ns = t
        self.w_sent_mono = now
        w.send(self.post_bytes(body))

    def post_bytes(self, body: bytes) -> bytes:
        return (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.w_hostport}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
            + body
        )

    def on_writer_response(self, status: int) -> None:
        if self.poke_status == -1:
            self.poke_status = status
            return
        if not self.w_waiting:
            return
        self.w_waiting = False
        if status not in (200, 204):
            self.w_errors[str(status)] = self.w_errors.get(str(status), 0) + 1
        else:
            self.w_lat.append(time.time_ns() - self.w_sent_ns)

    def poke(self) -> None:
        """Append one uncounted message (after the readers closed) and wait for its ack."""
        w = self.writer
        if w is None:
            return
        w.close()  # a fresh connection: the server may have closed the idle one meanwhile
        try:
            w.open(None)
        except OSError:
            return
        self.poke_status = -1
        w.send(self.post_bytes(b'{"poke":true}'))
        self.pump(lambda: self.poke_status != -1, time.monotonic() + 10)

    # -- phases ----------------------------------------------------------------------------

    def phase(self, name: str, only: tuple[str, ...] | None = None) -> None:
        """Time, own CPU, watched processes and scraped metrics (only the `only` ones, if given)."""
        info: dict = {"t": time.time(), "cpu_s": _self_cpu(), "pids": {}, "metrics": {}}
        for spec in self.args.watch_pid:
            label, pid = spec.split("=", 1)
            info["pids"][label] = _proc_info(int(pid))
        for spec in self.args.scrape:
            label, url = spec.split("=", 1)
            if only is None or label in only:
                info["metrics"][label] = _scrape(url)
        self.phases[name] = info

    # -- run -------------------------------------------------------------------------------

    def stored_messages(self) -> set[int]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        offset, found, deadline = self.args.offset, set(), time.monotonic() + 60
        try:
            for _ in range(10_000):
                if time.monotonic() > deadline:
                    break
                conn.request("GET", f"{self.path}?offset={quote(offset, safe='')}")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    break
                for i, _t in _messages(body) or ():
                    if i >= 0:
                        found.add(i)
                nxt = resp.getheader("Stream-Next-Offset") or offset
                if (resp.getheader("Stream-Up-To-Date") or "").lower() == "true" or nxt == offset:
                    break
                offset = nxt
        except (OSError, http.client.HTTPException) as exc:
            print(f"live_client: read-back failed: {exc!r}", file=sys.stderr)
        finally:
            conn.close()
        return found

    def run(self) -> dict:
        a = self.args
        t_start = time.monotonic()
        native = NativeReaders(a) if a.native_readers else None
        if native is not None:
            opened = int(native.expect("CONNECTED")[0])
            connected = time.monotonic()
            self.ready_count = int(native.expect("READY")[0])
        else:
            self.open_readers(a.connect_batch, t_start + a.connect_timeout)
            opened = len(self.conns)
            connected = time.monotonic()
        print(f"live_client: {opened} connections open in {connected - t_start:.1f} s", file=sys.stderr)
        # SSE: wait until every reader has had its first control event (it is subscribed)
        self.pump(lambda: self.ready_count >= len(self.readers), connected + a.connect_timeout)
        subscribed = time.monotonic()
        self.writer_open()
        self.pump(None, time.monotonic() + a.settle)
        self.phase("ready")
        print(
            f"live_client: {self.ready_count}/{a.readers} readers ready after "
            f"{subscribed - t_start:.1f} s; writing {self.appends} messages",
            file=sys.stderr,
            flush=True,
        )
        cpu0, wall0 = _self_cpu() + (native.cpu_s() if native else 0.0), time.monotonic()
        self.w_t0 = time.monotonic() + 0.01
        self.w_give_up = self.w_t0 + a.max_write_s
        self.writing = True
        self.pump(lambda: not self.writing, None if a.max_write_s <= 0 else self.w_give_up + 15)
        # the last ack
        self.pump(lambda: not self.w_waiting, time.monotonic() + 10)
        # deliveries may still be under way: only quick scrapes here (the origin), no edge /metrics
        self.phase("written", only=tuple(a.written_scrape.split(",")) if a.written_scrape else ())
        sent = len(self.write_times)
        if sent < self.target:
            self.target = sent
            for r in self.readers:
                if not r.complete and r.n_seen >= self.target:
                    r.complete = True
                    self.complete_count += 1
        last_write = time.monotonic()
        if native is not None:
            native.tell(f"TARGET {self.target}")
            native.expect("DRAINED")
        else:
            self.pump(lambda: self.complete_count >= len(self.readers), last_write + a.drain)
        drained = time.monotonic()
        cpu1 = _self_cpu() + (native.cpu_s() if native else 0.0)
        self.phase("drained")
        self.stopping = True
        for r in self.readers:
            r.close()
        if native is not None:
            native.tell("CLOSE")
            native.expect("CLOSED")
        stored = self.stored_messages()
        self.stopping = False
        self.poke()
        self.pump(None, time.monotonic() + a.after_close)
        self.phase("closed")
        if self.writer is not None:
            self.writer.close()
        # per reader: bitmaps as big integers (each byte is 0 or 1, so AND/AND-NOT work bytewise)
        mask = bytearray(self.appends)
        for i in stored:
            mask[i] = 1
        stored_int = int.from_bytes(mask, "little")
        not_stored_int = int.from_bytes(bytes(1 - x for x in mask), "little")
        nbytes = len(mask)
        got_stored, got_unstored = [], []
        for r in self.readers:
            seen_int = int.from_bytes(r.seen, "little")
            got_stored.append((seen_int & stored_int).to_bytes(nbytes, "little").count(1))
            got_unstored.append((seen_int & not_stored_int).to_bytes(nbytes, "little").count(1))
        per_reader_missed = [len(stored) - g for g in got_stored]
        incomplete = [r for r, m in zip(self.readers, per_reader_missed, strict=True) if m]
        received = sum(got_stored)
        expected = len(self.readers) * len(stored)
        gaps = [b - a_ for a_, b in zip(self.write_times, self.write_times[1:], strict=False)]
        per_reader_dups = [r.dups for r in self.readers]
        stuck = [
            {
                "reader": r.idx,
                "received": r.n_seen,
                "offset": r.offset,
                "last_status": r.last_status,
                "reconnects": r.reconnects,
                "ready": r.ready,
                "done": r.done,
            }
            for r in incomplete[:10]
        ]
        result = {
            "mode": a.mode,
            "readers": len(self.readers),
            "appends": self.appends,
            "interval_s": a.interval,
            "expected_deliveries": expected,
            "deliveries": received,
            "missed": expected - received,
            "duplicates": sum(per_reader_dups),
            "readers_with_missed": sum(1 for m in per_reader_missed if m),
            "readers_with_duplicates": sum(1 for d in per_reader_dups if d),
            "max_missed_per_reader": max(per_reader_missed, default=0),
            "max_duplicates_per_reader": max(per_reader_dups, default=0),
            "readers_incomplete": len(incomplete),
            "stuck_examples": stuck,
            "readers_ready": self.ready_count,
            "appends_sent": sent,
            "appends_acked": len(self.w_lat),
            "appends_stored": len(stored),
            "writer_gave_up": self.writer_gave_up,
            "never_stored_but_received": sum(got_unstored),
            "status_errors": {str(k): v for k, v in self.status_errors.items()},
            "bad_bodies": self.bad_bodies,
            "bad_responses": self.bad_responses,
            "foreign_messages": self.foreign,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "responses_200": self.responses_200,
            "responses_204": self.responses_204,
            "sse_responses_ended": self.sse_responses_ended,
            "keepalives": self.keepalives,
            "recvs": self.recvs,
            "multi_message_recvs": self.multi_message_recvs,
            "kernel_timestamps": self.kernel_stamps,
            "latency_ms": stats(self.lat),
            "latency_user_ms": stats(self.lat_user),
            "writer_append_ms": stats(self.w_lat),
            "writer_errors": self.w_errors,
            "poke_status": self.poke_status,
            "write_interval_mean_s": (sum(gaps) / len(gaps)) if gaps else None,
            "client_cpu_pct_while_writing": 100 * (cpu1 - cpu0) / max(drained - wall0, 1e-9),
            "connect_s": connected - t_start,
            "subscribe_s": subscribed - t_start,
            "write_s": drained - wall0,
            "total_s": time.monotonic() - t_start,
            "phases": self.phases,
            "native_readers": native is not None,
        }
        if native is not None:
            readers = native.finish(stored)
            result.update({key: readers[key] for key in NATIVE_READER_KEYS})
        return result


def stats(values) -> dict:
    """Nearest-rank percentiles of nanosecond values, in ms (same definition as longpoll_client)."""
    if not len(values):
        return {"n": 0}
    s = sorted(values)
    n = len(s)

    def pct(p: float) -> float:
        rank = max(1, -(-n * p // 100))
        return s[int(rank) - 1] / 1e6

    return {
        "n": n,
        "mean": sum(s) / n / 1e6,
        "min": s[0] / 1e6,
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "p999": pct(99.9),
        "max": s[-1] / 1e6,
    }


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_info(pid: int) -> dict:
    out: dict = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key + "_kib"] = int(line.split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        out["gone"] = True
    return out


_METRIC_RE = re.compile(r"^(ds_[a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)\s*$")


def _scrape(url: str) -> dict:
    """ds_* counters and gauges of a Prometheus endpoint (no histogram buckets)."""
    parts = urlsplit(url)
    out: dict = {}
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", parts.path or "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return {"error": repr(exc)}
    for line in text.splitlines():
        m = _METRIC_RE.match(line)
        if m and not m.group(1).endswith(("_bucket", "_created")):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mode", choices=("long-poll", "sse"), required=True)
    parser.add_argument("--url", required=True, help="server base URL (loopback only)")
    parser.add_argument("--path", required=True, help="stream path, e.g. /v1/stream/lp-1")
    parser.add_argument("--offset", required=True, help="tail offset of the (empty) stream")
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--write-url", default=None, help="base URL the writer appends to (default: --url)")
    parser.add_argument("--connect-batch", type=int, default=100, help="connections opened at a time")
    parser.add_argument("--connect-timeout", type=float, default=120.0, help="max seconds to connect / subscribe")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between ready and the first append")
    parser.add_argument("--drain", type=float, default=7.0, help="max seconds to wait for deliveries at the end")
    parser.add_argument("--after-close", type=float, default=2.0, help="seconds between closing and the last scrape")
    parser.add_argument("--max-write-s", type=float, default=120.0, help="the writer stops after this many seconds")
    parser.add_argument("--scrape", action="append", default=[], help="name=URL of a /metrics to read at each phase")
    parser.add_argument(
        "--written-scrape", default="", help="comma-separated --scrape names also read right after the last ack"
    )
    parser.add_argument("--watch-pid", action="append", default=[], help="name=PID whose RSS/CPU to read per phase")
    parser.add_argument(
        "--native-readers", action="store_true", help="SSE: run the readers as bench/sse_readers.c (built with gcc)"
    )
    args = parser.parse_args()
    if args.native_readers and args.mode != "sse":
        parser.error("--native-readers is for --mode sse")
    for url in (args.url, args.write_url or args.url):
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
            parser.error("only loopback servers are allowed")
    for spec in args.scrape:
        if urlsplit(spec.split("=", 1)[-1]).hostname not in ("127.0.0.1", "localhost"):
            parser.error("only loopback metrics endpoints are allowed")
    if not (1 <= args.readers <= 20000 and 1 <= args.appends <= 100000 and 0.001 <= args.interval <= 10):
        parser.error("--readers/--appends/--interval out of range")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.readers + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if min(want, hard) < want:
        print(f"live_client: open-file limit {hard} is below {want}", file=sys.stderr)
    result = Bench(args).run()
    print("LIVE_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
