"""Real server processes for tests: start on port 0, read SERVER_URL=, stop with a signal.

`OriginProcess` runs `plugin-streams origin` exactly as an operator would (the console script
of this checkout's virtual environment), so tests exercise the real CLI, config and shutdown.

Every server runs with blockbuster watching its event loop (shared.aio.loop_watch): a blocking
call there fails its request and logs BLOCKING_MARK; stopping the process then fails the test.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from plugin_streams.shared.aio.loop_watch import BLOCKING_MARK, ENV

CLI = str(Path(sys.executable).with_name("plugin-streams"))


class ServerProcess:
    """A `plugin-streams` subcommand as a child process; see OriginProcess and EdgeProcess."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = log_path

    def start(self, timeout: float = 20.0) -> Self:
        log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DS_ORIGIN_", "DS_EDGE_"))}
        env.setdefault(ENV, "1")  # on unless the run says PLUGIN_STREAMS_BLOCKBUSTER=0 (to measure it)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env)
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("SERVER_URL="):
                        self.url = line.split("=", 1)[1].strip()
                        return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"{self.args[1]} did not start; log:\n{self.log_path.read_text(errors='replace')}")

    @property
    def stream_url(self) -> str:
        return self.url + "/v1/stream/"

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: returns the exit code (0 after a graceful drain).

        AssertionError if the server ever blocked its event loop (see blocking_calls).
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            self._close()
        self.assert_loop_never_blocked()
        return code

    def blocking_calls(self) -> list[str]:
        """The log's BLOCKING_MARK lines: blocking calls this server made on its event loop."""
        if not self.log_path.exists():
            return []
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if BLOCKING_MARK in line]

    def assert_loop_never_blocked(self) -> None:
        found = self.blocking_calls()
        if found:
            log = self.log_path.read_text(errors="replace")
            start = log.index(BLOCKING_MARK)
            raise AssertionError(f"{self.args[1]} blocked its event loop: {found}\n{log[start : start + 6000]}")

    def kill(self) -> None:
        """SIGKILL: the crash the storage must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


#: The catch-up chunk size of test origins (and of test edges' regional replicas): small, so a few
#: hundred KiB of test data make several complete (immutable, cacheable) chunks. `chunk_size=None`
#: runs the production default (1 MiB), as the conformance tests do; a `--chunk-size` (or
#: `--replica-chunk-size`) in `extra` wins over both.
TEST_CHUNK_SIZE = 64 * 1024


class OriginProcess(ServerProcess):
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *extra: str,
        long_poll_timeout: float = 0.5,
        chunk_size: int | None = TEST_CHUNK_SIZE,
    ) -> None:
        self.data_dir = str(data_dir)
        args = [CLI, "origin", "--host", "127.0.0.1", "--port", "0", "--data-dir", self.data_dir]
        if chunk_size is not None:
            args += ["--chunk-size", str(chunk_size)]
        args += ["--long-poll-timeout", str(long_poll_timeout), *extra]
        super().__init__(args, Path(self.data_dir).with_name(Path(self.data_dir).name + ".origin.log"))


class EdgeProcess(ServerProcess):
    def __init__(
        self,
        origin_url: str,
        log_dir: str | os.PathLike[str],
        *extra: str,
        long_poll_timeout: float = 0.5,
        chunk_size: int | None = TEST_CHUNK_SIZE,
    ):
        args = [CLI, "edge", "--host", "127.0.0.1", "--port", "0", "--origin", origin_url]
        if chunk_size is not None:  # a regional replica's chunk windows are the test origin's
            args += ["--replica-chunk-size", str(chunk_size)]
        args += ["--long-poll-timeout", str(long_poll_timeout), *extra]
        log = Path(log_dir) / f"edge-{os.getpid()}-{id(self)}.log"
        super().__init__(args, log)


class ProcessGroup:
    """Origins and edges a test starts (and may kill); stop_all() stops those still running."""

    def __init__(self, tmp_path: Path, long_poll_timeout: float) -> None:
        self.tmp_path = tmp_path
        self.long_poll_timeout = long_poll_timeout
        self.started: list[ServerProcess] = []

    def _origin(self, flags: tuple[str, ...], data_dir: Path | None, long_poll_timeout: float | None) -> OriginProcess:
        timeout = self.long_poll_timeout if long_poll_timeout is None else long_poll_timeout
        process = OriginProcess(data_dir or self.tmp_path / "data", *flags, long_poll_timeout=timeout)
        self.started.append(process)
        return process

    def origin(
        self, *flags: str, data_dir: Path | None = None, long_poll_timeout: float | None = None
    ) -> OriginProcess:
        return self._origin(flags, data_dir, long_poll_timeout).start()

    async def aorigin(
        self, *flags: str, data_dir: Path | None = None, long_poll_timeout: float | None = None
    ) -> OriginProcess:
        """Start an origin without blocking the test's event loop (clients keep running)."""
        return await asyncio.to_thread(self._origin(flags, data_dir, long_poll_timeout).start)

    def edge(self, origin_url: str, *flags: str, long_poll_timeout: float | None = None) -> EdgeProcess:
        timeout = self.long_poll_timeout if long_poll_timeout is None else long_poll_timeout
        process = EdgeProcess(origin_url, self.tmp_path, *flags, long_poll_timeout=timeout)
        self.started.append(process)
        return process.start()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name}\n{p.log_path.read_text(errors='replace')[-4000:]}"
            for p in self.started
            if p.log_path.exists()
        )

    def stop_all(self) -> None:
        """SIGTERM (SIGKILL after 15 s) every started process still running, the last started first.

        Then AssertionError if any of them (killed ones too) blocked its event loop.
        """
        for process in reversed(self.started):
            if process.proc is None or process.proc.poll() is not None:
                process._close()
                continue
            try:
                process.stop(timeout=15)
            except AssertionError:
                pass  # reported below, with the others
            except Exception:
                process.kill()
        for process in self.started:
            process.assert_loop_never_blocked()


@contextmanager
def process_group(tmp_path: Path, long_poll_timeout: float) -> Iterator[ProcessGroup]:
    """A ProcessGroup whose processes are stopped when the block ends (the fixtures' one wrapper)."""
    group = ProcessGroup(tmp_path, long_poll_timeout)
    try:
        yield group
    finally:
        group.stop_all()


def terminate(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM a helper process (nginx, varnish, ...) and wait; SIGKILL if it outlives `timeout` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
