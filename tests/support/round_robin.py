"""An HTTP proxy that sends consecutive requests to its upstreams in turn: several origins as one.

With origins on one shared database (the postgres engine), any request may reach any of them; this
proxy makes sure consecutive requests do (a create on one, the append on the next, the read on the
one after), which is what the conformance suite run through it checks. Requests and responses are
streamed both ways (SSE included); the Host header is passed on, so a Location names the proxy.

    python -m tests.support.round_robin --upstream http://127.0.0.1:4437 --upstream http://127.0.0.1:4447
prints PROXY_PORT=<port> once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def build_app(upstreams: list[str]) -> web.Application:
    turn = itertools.cycle(upstreams)
    app = web.Application(client_max_size=1024**3)
    sessions: list[aiohttp.ClientSession] = []

    async def on_startup(app: web.Application) -> None:
        sessions.append(aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)))

    async def on_cleanup(app: web.Application) -> None:
        await sessions[0].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        upstream = next(turn)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with sessions[0].request(
            request.method,
            upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding", "Accept"),
        ) as reply:
            response = web.StreamResponse(status=reply.status, reason=reply.reason)
            for key, value in reply.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    response.headers.add(key, value)
            if reply.headers.get("Content-Length") is not None and request.method != "HEAD":
                response.content_length = int(reply.headers["Content-Length"])
            await response.prepare(request)
            try:
                async for data in reply.content.iter_any():
                    await response.write(data)
            except (aiohttp.ClientError, ConnectionResetError):
                pass
            await response.write_eof()
            return response

    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def serve(upstreams: list[str], port: int) -> None:
    runner = web.AppRunner(build_app(upstreams), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"PROXY_PORT={bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", action="append", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve([u.rstrip("/") for u in args.upstream], args.port))


if __name__ == "__main__":
    main()
