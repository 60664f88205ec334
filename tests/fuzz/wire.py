"""One HTTP/1.1 exchange over a raw socket, bounded in time and size.

The fuzzer needs requests no ordinary client sends (odd methods, unencoded or absolute-form
targets, duplicated or huge headers), and it needs to tell "the server is slow to answer" from
"the answer is a live stream that never ends". So each exchange opens its own connection, sends
bytes exactly as given, and reads one response with two deadlines: the head must arrive within
`head_timeout`; a body must complete within `body_timeout`, except the body of a live response
(SSE, the replication feeds), which is read for `live_read` seconds and then dropped.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

LIVE_TYPES = ("text/event-stream", "application/x-ndjson", "application/x-ds-replication-log")


class Hang(Exception):
    """The server did not answer (or finish answering) within the client's deadline."""


class Malformed(Exception):
    """The answer is not valid HTTP/1.1 framing (the bytes received are in the message)."""


@dataclass
class Response:
    status: int  # 0: the server closed the connection without answering
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    live: bool = False  # a live body, read for a while and then dropped
    truncated: bool = False  # more than max_body bytes: the rest was not read

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.received = bytearray()  # everything, for a report when the framing is wrong
        self.eof = False

    def fill(self, deadline: float) -> bool:
        """Read more bytes before `deadline`; False at end of stream; Hang past the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Hang("deadline passed")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise Hang("deadline passed") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        if len(self.received) < 8192:
            self.received += chunk[:8192]
        return True

    def until(self, marker: bytes, deadline: float, limit: int) -> bytes | None:
        while (at := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit or not self.fill(deadline):
                return None
        line, self.buffer = self.buffer[:at], self.buffer[at + len(marker) :]
        return line

    def exactly(self, n: int, deadline: float) -> bytes | None:
        while len(self.buffer) < n:
            if not self.fill(deadline):
                return None
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


def exchange(
    host: str,
    port: int,
    raw: bytes,
    *,
    head_request: bool,
    head_timeout: float,
    body_timeout: float,
    live_read: float = 0.3,
    max_body: int = 4 << 20,
) -> Response:
    """Send `raw` on a fresh connection and read one response (see the module docstring)."""
    with socket.create_connection((host, port), timeout=head_timeout) as sock:
        try:
            sock.sendall(raw)
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may answer (413, 431) and close before reading everything: read that answer
        reader = _Reader(sock)
        head = reader.until(b"\r\n\r\n", time.monotonic() + head_timeout, limit=1 << 20)
        if head is None:
            return Response(0)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        _version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
        if not code.isdigit():
            raise Malformed(f"status line {status_line[:100]!r}")
        response = Response(int(code), reason, headers)
        if head_request or response.status in (204, 304) or response.status < 200:
            return response
        content_type = (response.header("Content-Type") or "").lower()
        response.live = content_type.startswith(LIVE_TYPES)
        deadline = time.monotonic() + (live_read if response.live else body_timeout)
        try:
            _read_body(reader, response, deadline, max_body)
        except ValueError:
            raise Malformed(f"body framing; received {bytes(reader.received[:1500])!r}") from None
        except Hang:
            if not response.live:
                raise Hang(f"{response.status} head arrived, body unfinished after {body_timeout} s") from None
        return response


def _read_body(reader: _Reader, response: Response, deadline: float, max_body: int) -> None:
    length = response.header("Content-Length")
    if "chunked" in (response.header("Transfer-Encoding") or "").lower():
        body = bytearray()
        while len(body) <= max_body:
            size_line = reader.until(b"\r\n", deadline, limit=4096)
            if size_line is None:
                break
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            chunk = reader.exactly(size + 2, deadline)
            if chunk is None:
                break
            body += chunk[:-2]
            response.body = bytes(body)
        response.truncated = len(body) > max_body
    elif length is not None:
        wanted = int(length)
        response.truncated = wanted > max_body
        response.body = reader.exactly(min(wanted, max_body), deadline) or reader.buffer
    else:
        while len(reader.buffer) <= max_body and reader.fill(deadline):
            pass
        response.body = reader.buffer
        response.truncated = len(reader.buffer) > max_body
