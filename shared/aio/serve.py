"""Run an aiohttp application until SIGTERM/SIGINT, then drain and exit 0.

Prints `SERVER_URL=http://host:port` once listening (with the real port when asked for port 0),
which tests and scripts read from the child's stdout. On a stop signal the listening socket
closes first, the app's on_shutdown hooks end live responses, in-flight requests get
`grace` seconds, and cleanup_ctx resources close in reverse order.

Every connection is guarded (shared.aio.guard): a request head, a stalled body and an idle
keep-alive connection each have a timeout, and live reads learn at once that their client left.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from plugin_streams.shared.aio.fast_lane import runner_for
from plugin_streams.shared.aio.guard import ConnectionTimeouts, guarded
from plugin_streams.shared.aio.loop_watch import activate_if_requested

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency; this keeps odd platforms working
    uvloop = None  # type: ignore[assignment]


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    grace: float = 10.0,
    reuse_port: bool = False,
    announce: bool = True,
    timeouts: ConnectionTimeouts | None = None,
) -> int:
    activate_if_requested()  # tests: a blocking call on the loop fails loudly (shared.aio.loop_watch)
    runner_factory = asyncio.Runner(loop_factory=uvloop.new_event_loop if uvloop else None)
    with runner_factory as runner:
        return runner.run(_serve(app, host, port, grace, reuse_port, announce, timeouts or ConnectionTimeouts()))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    grace: float,
    reuse_port: bool,
    announce: bool,
    timeouts: ConnectionTimeouts,
) -> int:
    runner = runner_for(  # the app's fast lane, if it has one, sees requests first
        app,
        handle_signals=False,
        shutdown_timeout=grace,
        access_log=None,  # the app's observe middleware writes the access log
        keepalive_timeout=timeouts.idle,
    )
    # Signal handlers first: a stop request arriving right after SERVER_URL= must still drain.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()
    assert runner.server is not None
    # Our own listener rather than a TCPSite: each connection's protocol is wrapped in its guard.
    listener = await loop.create_server(
        guarded(runner.server, timeouts, loop),
        host,
        port,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=4096,
    )
    bound = listener.sockets[0].getsockname()
    if announce:
        print(f"SERVER_URL=http://{_host_for_url(host)}:{bound[1]}", flush=True)
    await stop.wait()
    print("stopping: draining live connections", file=sys.stderr, flush=True)
    listener.close()  # no new connections; the runner then drains the open ones
    await runner.cleanup()
    return 0


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
