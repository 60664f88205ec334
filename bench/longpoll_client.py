"""Long-poll fan-out load generator: N long-poll readers on one stream and one timed writer.

Run by compare_origin.py in its own process (pinned to the load-generator core), never inside
the server's process::

    python bench/longpoll_client.py --url http://127.0.0.1:PORT --path /v1/stream/NAME \
        --offset <tail offset> --readers 1000 --appends 100 --interval 0.1

The stream must exist, have content type application/json and be empty from ``--offset`` on.
Every reader loops ``GET path?offset=O&live=long-poll[&cursor=C]`` on its own keep-alive
connection, re-issuing with the returned ``Stream-Next-Offset`` and ``Stream-Cursor``. The
writer appends ``{"i": k, "t": <send time, ns since the epoch>, ...}`` every ``--interval``
seconds on a fixed schedule, waiting for each append's response (closed loop: if an append takes
longer than the interval, the next one goes out as soon as it is acknowledged).

Delivery latency = arrival time of the response carrying message k - t, where the arrival time
is the kernel's receive timestamp of the packet (``SO_TIMESTAMPNS``, CLOCK_REALTIME, the same
clock as ``time.time_ns()`` used for t). With 1,000 readers woken at once, a Python client needs
tens of milliseconds to parse 1,000 responses; a user-space timestamp would charge that queueing
inside the client to the server. The kernel timestamp does not depend on when the client gets to
the socket. The user-space receive time is reported too (``latency_user_ms``): the difference
between the two is the client's own delay. If the kernel gives no timestamp, the user-space time
is used (``kernel_timestamps`` says how many deliveries had one).

The client uses plain non-blocking sockets on the event loop (``add_reader`` + ``recvmsg``, which
asyncio's transports do not expose) and a minimal HTTP/1.1 response parser (Content-Length,
chunked, 204). Prints one line ``LP_RESULT {json}`` on stdout. Every loop is bounded in count
and time.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import re
import resource
import socket
import struct
import sys
import time
from urllib.parse import quote, urlsplit

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 = SO_TIMESTAMPNS_OLD on x86-64/arm64
ANC_SIZE = socket.CMSG_SPACE(16)
RECV_SIZE = 256 * 1024
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MAX_ERRORS_PER_READER = 50
MAX_RECONNECTS_PER_READER = 20
_HEADER_RE = re.compile(
    rb"\r\n(content-length|transfer-encoding|stream-next-offset|stream-cursor|stream-closed|connection)"
    rb"[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)
_SAFE_RE = re.compile(r"^[A-Za-z0-9_.~-]*$")


def _q(value: str) -> str:
    return value if _SAFE_RE.match(value) else quote(value, safe="")


class HttpConn:
    """One HTTP/1.1 keep-alive connection, one request in flight at a time (no pipelining).

    ``on_response(conn, status, headers, body, t_kernel_ns, t_user_ns)`` is called for each
    complete response, with the receive times of its first bytes; ``on_lost(conn, exc)`` when
    the connection ends. Only the headers the benchmark needs are extracted (lower-case keys).
    """

    def __init__(self, on_response, on_lost) -> None:
        self.on_response = on_response
        self.on_lost = on_lost
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.buf = bytearray()
        self.t_kernel: int | None = None
        self.t_user: int | None = None
        self.closed = True

    async def connect(self, host: str, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass
        try:
            await self.loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.closed = False
        self.buf.clear()
        self.t_kernel = self.t_user = None
        self.loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        if self.sock is None:
            return
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(RECV_SIZE, ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        if self.t_kernel is None:
            self.t_user = time.time_ns()
            self.t_kernel = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                    sec, nsec = struct.unpack_from("qq", payload)
                    self.t_kernel = sec * 1_000_000_000 + nsec
        self.buf += data
        try:
            self.parse()
        except (ValueError, IndexError) as exc:
            print(f"longpoll_client: bad response: {exc!r}", file=sys.stderr)
            self._lost(exc)

    def send(self, data: bytes) -> None:
        if self.sock is None or self.closed:
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):  # never expected for a small request on an idle connection
            assert self.loop is not None
            rest = data[sent:]
            self.loop.create_task(self.loop.sock_sendall(self.sock, rest))

    def _lost(self, exc) -> None:
        if self.closed:
            return
        self.close()
        self.on_lost(self, exc)

    def close(self) -> None:
        if self.sock is not None and not self.closed:
            self.closed = True
            assert self.loop is not None
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def parse(self) -> None:
        while self.buf:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    raise ValueError("response head too large")
                return
            head = bytes(self.buf[: end + 2])
            line_end = head.find(b"\r\n")
            status = int(head[:line_end].split(b" ", 2)[1])
            headers = {
                m.group(1).lower().decode(): m.group(2).strip().decode("latin-1")
                for m in _HEADER_RE.finditer(head, line_end)
            }
            pos = end + 4
            if status in (204, 304) or 100 <= status < 200:
                body = b""
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size_end = self.buf.find(b"\r\n", pos)
                    if size_end < 0:
                        return  # incomplete
                    size = int(bytes(self.buf[pos:size_end]).split(b";")[0], 16)
                    if size > MAX_RESPONSE_BYTES:
                        raise ValueError("chunk too large")
                    if size == 0:
                        trailer_end = self.buf.find(b"\r\n", size_end + 2)  # no trailers expected
                        if trailer_end < 0:
                            return
                        pos = trailer_end + 2
                        break
                    if len(self.buf) < size_end + 2 + size + 2:
                        return
                    parts.append(bytes(self.buf[size_end + 2 : size_end + 2 + size]))
                    pos = size_end + 2 + size + 2
                body = b"".join(parts)
            elif "content-length" in headers:
                length = int(headers["content-length"])
                if length > MAX_RESPONSE_BYTES:
                    raise ValueError("body too large")
                if len(self.buf) < pos + length:
                    return
                body = bytes(self.buf[pos : pos + length])
                pos += length
            else:
                raise ValueError("response without length (read-until-close is not supported)")
            del self.buf[:pos]
            t_kernel, t_user = self.t_kernel, self.t_user
            if self.buf:
                self.t_kernel = self.t_user = time.time_ns()
            else:
                self.t_kernel = self.t_user = None
            self.on_response(self, status, headers, body, t_kernel, t_user)


class Reader:
    def __init__(self, bench: Bench, index: int, offset: str) -> None:
        self.bench = bench
        self.index = index
        self.offset = offset
        self.cursor: str | None = None
        self.conn = HttpConn(self.on_response, self.on_lost)
        self.received: set[int] = set()
        self.duplicates = 0
        self.errors = 0
        self.reconnects = 0
        self.responses_200 = 0
        self.responses_204 = 0
        self.done = False
        self.counted = False

    async def connect(self) -> None:
        await self.conn.connect(self.bench.host, self.bench.port)

    def request(self) -> None:
        if self.bench.stopping or self.done or self.conn.closed:
            return
        target = f"{self.bench.path}?offset={_q(self.offset)}&live=long-poll"
        if self.cursor is not None:
            target += f"&cursor={_q(self.cursor)}"
        self.conn.send(f"GET {target} HTTP/1.1\r\nHost: {self.bench.hostport}\r\n\r\n".encode("latin-1"))

    def on_response(self, conn, status, headers, body, t_kernel, t_user) -> None:
        bench = self.bench
        if status == 200:
            self.responses_200 += 1
            try:
                messages = json.loads(body) if body else []
            except ValueError:
                bench.bad_bodies += 1
                messages = []
            for message in messages if isinstance(messages, list) else ():
                i = message.get("i") if isinstance(message, dict) else None
                if not isinstance(i, int) or not isinstance(message.get("t"), int):
                    bench.foreign_messages += 1
                    continue
                if i in self.received:
                    self.duplicates += 1
                    continue
                self.received.add(i)
                if t_kernel:
                    bench.kernel_stamps += 1
                    bench.latencies_ns.append(t_kernel - message["t"])
                else:
                    bench.latencies_ns.append(t_user - message["t"])
                bench.latencies_user_ns.append(t_user - message["t"])
        elif status == 204:
            self.responses_204 += 1
        else:
            self.errors += 1
            bench.status_errors[status] = bench.status_errors.get(status, 0) + 1
        if status in (200, 204):
            next_offset = headers.get("stream-next-offset")
            if next_offset:
                self.offset = next_offset
            self.cursor = headers.get("stream-cursor", self.cursor)
            if headers.get("stream-closed", "").lower() == "true":
                self.done = True
                return
        if not self.counted and len(self.received) >= bench.target:
            self.counted = True
            bench.reader_complete()
        if self.errors > MAX_ERRORS_PER_READER:
            self.done = True
            return
        if headers.get("connection", "").lower() == "close":
            return  # the server closes the connection: on_lost reconnects and re-issues
        if status in (200, 204):
            self.request()
        else:
            asyncio.get_running_loop().call_later(0.2, self.request)

    def on_lost(self, conn, exc) -> None:
        if self.bench.stopping or self.done:
            return
        self.reconnects += 1
        self.bench.reconnects += 1
        if self.reconnects > MAX_RECONNECTS_PER_READER:
            self.done = True
            return
        self.bench.spawn(self._reconnect())

    async def _reconnect(self) -> None:
        try:
            async with asyncio.timeout(10):
                await self.connect()
        except (OSError, TimeoutError):
            self.bench.connect_failures += 1
            self.done = True
            return
        self.request()


class Bench:
    def __init__(self, args) -> None:
        parts = urlsplit(args.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.hostport = parts.netloc
        self.path = args.path
        self.args = args
        self.appends = args.appends
        self.target = args.appends  # messages each reader waits for (lowered if the writer gives up)
        self.stopping = False
        self.latencies_ns: list[int] = []
        self.latencies_user_ns: list[int] = []
        self.kernel_stamps = 0
        self.status_errors: dict[int, int] = {}
        self.bad_bodies = 0
        self.foreign_messages = 0
        self.reconnects = 0
        self.connect_failures = 0
        self.readers: list[Reader] = []
        self.complete_readers = 0
        self.all_complete = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.writer_latencies_ns: list[int] = []
        self.writer_errors: dict[str, int] = {}
        self.write_times: list[float] = []
        self.writer_gave_up = False

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reader_complete(self) -> None:
        self.complete_readers += 1
        if self.complete_readers >= len(self.readers):
            self.all_complete.set()

    async def open_readers(self) -> None:
        self.readers = [Reader(self, i, self.args.offset) for i in range(self.args.readers)]
        batch = 50  # stay well under the servers' listen backlogs
        for start in range(0, len(self.readers), batch):
            group = self.readers[start : start + batch]
            async with asyncio.timeout(30):
                await asyncio.gather(*(r.connect() for r in group))
            for r in group:
                r.request()
            await asyncio.sleep(0.02)

    async def writer(self) -> None:
        loop = asyncio.get_running_loop()
        responses: asyncio.Queue = asyncio.Queue()

        def on_response(conn, status, headers, body, t_kernel, t_user):
            responses.put_nowait((status, time.time_ns()))

        def on_lost(conn, exc):
            responses.put_nowait((None, time.time_ns()))

        conn = HttpConn(on_response, on_lost)
        await conn.connect(self.host, self.port)
        pad = "p" * 40
        t0 = loop.time() + 0.05
        give_up = t0 + self.args.max_write_s
        for k in range(self.appends):
            if loop.time() > give_up:
                self.writer_gave_up = True
                break
            delay = t0 + k * self.args.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn.closed:
                while not responses.empty():
                    responses.get_nowait()
                async with asyncio.timeout(10):
                    await conn.connect(self.host, self.port)
            self.write_times.append(loop.time())
            t = time.time_ns()
            body = json.dumps({"i": k, "t": t, "pad": pad}, separators=(",", ":")).encode()
            conn.send(
                f"POST {self.path} HTTP/1.1\r\nHost: {self.hostport}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
                + body
            )
            try:
                async with asyncio.timeout(10):
                    status, t_done = await responses.get()
            except TimeoutError:
                self.writer_errors["timeout"] = self.writer_errors.get("timeout", 0) + 1
                conn.close()
                continue
            if status is None:
                self.writer_errors["disconnect"] = self.writer_errors.get("disconnect", 0) + 1
                continue
            if status not in (200, 204):
                self.writer_errors[str(status)] = self.writer_errors.get(str(status), 0) + 1
            self.writer_latencies_ns.append(t_done - t)
        conn.close()

    def stored_messages(self) -> set[int]:
        """Indices of the benchmark messages in the stream from --offset on (catch-up reads)."""
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
                for message in json.loads(body) if body else []:
                    if isinstance(message, dict) and isinstance(message.get("i"), int):
                        found.add(message["i"])
                nxt = resp.getheader("Stream-Next-Offset") or offset
                if (resp.getheader("Stream-Up-To-Date") or "").lower() == "true" or nxt == offset:
                    break
                offset = nxt
        finally:
            conn.close()
        return found

    async def run(self) -> dict:
        t_start = time.monotonic()
        await self.open_readers()
        connected = time.monotonic()
        await asyncio.sleep(self.args.settle)  # let every first long-poll park at the server
        await self.writer()
        if len(self.write_times) < self.target:
            self.target = len(self.write_times)
            for r in self.readers:
                if not r.counted and len(r.received) >= self.target:
                    r.counted = True
                    self.reader_complete()
        try:
            async with asyncio.timeout(self.args.drain):
                await self.all_complete.wait()
        except TimeoutError:
            pass
        self.stopping = True
        for r in self.readers:
            r.conn.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0.05)
        # What the stream really holds (an append that timed out at the writer may or may not
        # have been stored): a delivery is expected for every stored message.
        stored = await asyncio.to_thread(self.stored_messages)
        received = sum(len(r.received & stored) for r in self.readers)
        expected = len(self.readers) * len(stored)
        gaps = [b - a for a, b in zip(self.write_times, self.write_times[1:], strict=False)]
        return {
            "readers": len(self.readers),
            "appends": self.appends,
            "interval_s": self.args.interval,
            "expected_deliveries": expected,
            "deliveries": received,
            "missed": expected - received,
            "duplicates": sum(r.duplicates for r in self.readers),
            "readers_incomplete": sum(1 for r in self.readers if len(r.received & stored) < len(stored)),
            "appends_sent": len(self.write_times),
            "appends_acked": len(self.writer_latencies_ns),
            "appends_stored": len(stored),
            "writer_gave_up": self.writer_gave_up,
            "never_stored_but_received": sum(len(r.received - stored) for r in self.readers),
            "status_errors": {str(k): v for k, v in self.status_errors.items()},
            "bad_bodies": self.bad_bodies,
            "foreign_messages": self.foreign_messages,
            "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "responses_200": sum(r.responses_200 for r in self.readers),
            "responses_204": sum(r.responses_204 for r in self.readers),
            "kernel_timestamps": self.kernel_stamps,
            "latency_ms": _stats(sorted(self.latencies_ns)),
            "latency_user_ms": _stats(sorted(self.latencies_user_ns)),
            "writer_append_ms": _stats(sorted(self.writer_latencies_ns)),
            "writer_errors": self.writer_errors,
            "write_interval_mean_s": (sum(gaps) / len(gaps)) if gaps else None,
            "connect_s": connected - t_start,
            "total_s": time.monotonic() - t_start,
        }


def _stats(sorted_ns: list[int]) -> dict:
    if not sorted_ns:
        return {"n": 0}

    def pct(p: float) -> float:  # nearest-rank percentile
        rank = max(1, -(-len(sorted_ns) * p // 100))
        return sorted_ns[int(rank) - 1] / 1e6

    return {
        "n": len(sorted_ns),
        "mean": sum(sorted_ns) / len(sorted_ns) / 1e6,
        "min": sorted_ns[0] / 1e6,
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "p999": pct(99.9),
        "max": sorted_ns[-1] / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", required=True, help="server base URL (loopback only)")
    parser.add_argument("--path", required=True, help="stream path, e.g. /v1/stream/lp-1")
    parser.add_argument("--offset", required=True, help="tail offset of the (empty) stream")
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between connecting and the first append")
    parser.add_argument(
        "--drain", type=float, default=7.0, help="max seconds to wait for deliveries after the last append"
    )
    parser.add_argument(
        "--max-write-s", type=float, default=120.0, help="the writer stops after this many seconds (slow servers)"
    )
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        parser.error("only loopback servers are allowed")
    if not (1 <= args.readers <= 20000 and 1 <= args.appends <= 100000 and 0.001 <= args.interval <= 10):
        parser.error("--readers/--appends/--interval out of range")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.readers + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run

    async def go():
        return await Bench(args).run()

    result = runner(go())
    print("LP_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
