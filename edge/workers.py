"""`--workers N`: N edge processes on one port, the kernel spreading connections (SO_REUSEPORT).

Each worker is a full edge with its own cache and its own coalescing (so the origin sees up to
N upstream requests per append, one per worker). The supervisor picks the port, starts the
workers, prints SERVER_URL once they listen, restarts a worker that dies, forwards SIGTERM,
and exits with the worst code any worker had (a worker killed by signal S counts as 128 + S).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from plugin_streams.edge.config import EdgeConfig

logger = logging.getLogger(__name__)


def _reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT, so port 0 becomes one port all workers share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _wait_ready(children: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    """Every worker printed SERVER_URL= (it listens), so connections spread over all of them."""
    deadline = time.monotonic() + timeout
    for child in children:
        assert child.stdout is not None
        line = b""
        while not line.startswith(b"SERVER_URL="):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or child.poll() is not None:
                return False
            ready, _, _ = select.select([child.stdout], [], [], remaining)
            if ready:
                line = child.stdout.readline()
                if not line:
                    return False
    return True


def supervise(config: EdgeConfig) -> int:
    reserved = _reserve_port(config.host, config.port)
    port = reserved.getsockname()[1]
    argv = [a for a in sys.argv[1:] if a]
    argv = _replace_flag(_replace_flag(argv, "--port", str(port)), "--workers", "1")
    command = [sys.argv[0], *argv, "--reuse-port"]
    children = [_start(command) for _ in range(config.workers)]
    stopping = False
    worst = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    if _wait_ready(children, 30):
        print(f"SERVER_URL=http://{host}:{port}", flush=True)
    while not stopping or any(child.poll() is None for child in children):
        time.sleep(0.2)
        for i, child in enumerate(children):
            code = child.poll()
            if code is None or stopping:
                continue
            worst = max(worst, _exit_status(code))
            logger.error("edge worker %d exited with %d; starting a new one", child.pid, code)
            children[i] = _start(command)
    reserved.close()
    for child in children:
        worst = max(worst, _exit_status(child.returncode or 0))
    return worst


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    # The worker's stdout carries only its SERVER_URL= line; logs go to the shared stderr.
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def _replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == flag:
            skip = i + 1 < len(argv)
            continue
        if arg.startswith(flag + "="):
            continue
        out.append(arg)
    return [*out, flag, value]
