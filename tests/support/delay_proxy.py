"""A TCP proxy that adds one-way delay, and can cut the link: two simulated regions on one machine.

The kernel here has no netem qdisc, so inter-region latency comes from this proxy: every chunk
read from one side is delivered to the other `delay` seconds later (in order, without limiting
throughput: many chunks can be in flight). `cut()` is a partition: nothing moves in either
direction, and new connections are accepted but not connected onward, until `heal()`; bytes
sent meanwhile wait, as a real network's retransmissions would, unless the endpoints give up.

Used in-process by tests (ThreadedDelayProxy) and as a process by benchmarks:
    python -m tests.support.delay_proxy --target 127.0.0.1:4437 --delay 0.05
prints PROXY_PORT=<port>; SIGUSR1 cuts the link, SIGUSR2 heals it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from typing import Any


class DelayProxy:
    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        return self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Connection handlers and their pumps, until none is left (a cancelled handler may have
        # spawned a pump meanwhile): a task left pending when the loop closes is destroyed later,
        # in whatever test then collects garbage, as an "unraisable" error of that test.
        while self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)  # (test support: this proxy owns its tasks)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:  # (started by the server, not by _spawn: close() must cancel it too)
            self._tasks.add(handler)
            handler.add_done_callback(self._tasks.discard)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            await self._open.wait()  # a partition: the connection goes nowhere yet
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            up = self._spawn(self._pump(client_reader, upstream_writer))
            down = self._spawn(self._pump(upstream_reader, client_writer))
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._open.wait()
                writer.write(data)
                await writer.drain()

        delivering = self._spawn(deliver())
        try:
            while True:
                await self._open.wait()
                data = await reader.read(256 * 1024)
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await delivering
        finally:
            delivering.cancel()


class ThreadedDelayProxy:
    """A DelayProxy on its own event loop thread, for synchronous test code."""

    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._thread.start()
        self.proxy = DelayProxy(target_host, target_port, delay)
        self.port = asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._loop.call_soon_threadsafe(self.proxy.cut)

    def heal(self) -> None:
        self._loop.call_soon_threadsafe(self.proxy.heal)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ThreadedDelayProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _main(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    proxy = DelayProxy(host, int(port), args.delay)
    listen_port = await proxy.start(port=args.port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.cut)
    loop.add_signal_handler(signal.SIGUSR2, proxy.heal)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"PROXY_PORT={listen_port}", flush=True)
    await stop.wait()
    await proxy.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--delay", type=float, default=0.05, help="one-way delay in seconds")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(parser.parse_args()))
