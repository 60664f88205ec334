"""Start the Node reference server (``@durable-streams/server`` 0.3.7) as a child process.

Used to check the conformance harness and, later, to compare plugin-streams with the reference
in benchmarks::

    from node_reference import NodeReferenceServer

    with NodeReferenceServer() as node:               # in-memory
        print(node.url)                               # http://127.0.0.1:<free port>
    with NodeReferenceServer(data_dir="/tmp/ds") as node:   # file-backed (LMDB + logs)
        ...

    node = start_node_reference(); ...; node.stop()

The server binds 127.0.0.1 on a free port chosen by the OS (port 0), with a 500 ms long-poll
timeout (what the conformance suite needs). ``start_node_reference.mjs`` prints
``SERVER_URL=...`` once listening. The child exits when stop() is called and also when this
process dies (its stdin pipe closes), so it cannot be orphaned.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_suite import CONFORMANCE_DIR, ConformanceError, ensure_installed

START_SCRIPT = CONFORMANCE_DIR / "start_node_reference.mjs"


class NodeReferenceServer:
    """A running (after start()) Node reference server.

    ``data_dir``: None for in-memory mode; a path for file-backed mode (created if missing);
    or ``True`` for file-backed mode in a fresh temporary directory removed by stop().
    """

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | bool | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        long_poll_ms: int = 500,
        compression: bool = True,
        webhooks: bool = False,
        startup_timeout_s: float = 30,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.long_poll_ms = long_poll_ms
        self.compression = compression
        self.webhooks = webhooks
        self.startup_timeout_s = startup_timeout_s
        self._own_tmp: str | None = None
        if data_dir is True:
            self.data_dir: Path | None = None  # created in start()
            self._want_tmp = True
        else:
            self.data_dir = Path(data_dir) if data_dir else None
            self._want_tmp = False
        self._log_path = Path(log_path) if log_path else None
        self._log = None
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        if self.proc is not None:
            raise RuntimeError("already started")
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise ConformanceError("'node' not found on PATH")
        if self._want_tmp:
            self._own_tmp = tempfile.mkdtemp(prefix="ds-node-ref-")
            self.data_dir = Path(self._own_tmp)
        cmd = [
            node,
            str(START_SCRIPT),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--long-poll-ms",
            str(self.long_poll_ms),
            "--exit-on-stdin-close",
        ]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cmd += ["--data-dir", str(self.data_dir)]
        if not self.compression:
            cmd.append("--no-compression")
        if self.webhooks:
            cmd.append("--webhooks")
        if self._log_path is not None:
            self._log = open(self._log_path, "ab")
            stderr = self._log
        else:
            stderr = subprocess.DEVNULL
        self.proc = subprocess.Popen(
            cmd,
            cwd=CONFORMANCE_DIR,
            stdin=subprocess.PIPE,  # closing it (or our death) makes the server exit
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"},
            start_new_session=True,
        )
        try:
            self.url = self._wait_for_url()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_for_url(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        fd = self.proc.stdout.fileno()
        buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConformanceError(f"Node reference server did not start within {self.startup_timeout_s}s")
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    raise ConformanceError(
                        f"Node reference server exited with status {rc} before listening"
                        + (f" (see {self._log_path})" if self._log_path else "")
                    )
                buf += chunk
                for line in buf.decode("utf-8", "replace").splitlines():
                    if line.startswith("SERVER_URL="):
                        return line[len("SERVER_URL=") :].strip().rstrip("/")
            elif self.proc.poll() is not None:
                raise ConformanceError(f"Node reference server exited with status {self.proc.returncode}")

    def stop(self, timeout_s: float = 10) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_tmp is not None:
            shutil.rmtree(self._own_tmp, ignore_errors=True)
            self._own_tmp = None
            self.data_dir = None
        self.url = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> NodeReferenceServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # best effort; prefer stop() / the context manager
        if getattr(self, "proc", None) is not None:
            try:
                self.stop(timeout_s=2)
            except Exception:
                pass


def start_node_reference(
    *, data_dir: str | os.PathLike[str] | bool | None = None, long_poll_ms: int = 500, **kwargs
) -> NodeReferenceServer:
    """Start a Node reference server and return it (``.url``; ``.stop()`` when done)."""
    server = NodeReferenceServer(data_dir=data_dir, long_poll_ms=long_poll_ms, **kwargs)
    server.start()
    return server


if __name__ == "__main__":
    # Manual use: python tests/conformance/node_reference.py [DATA_DIR]  -> runs until Ctrl-C.
    srv = start_node_reference(data_dir=sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"SERVER_URL={srv.url}", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        srv.stop()
