"""What every client subcommand shares: server flags, the client, JSON-lines output, errors.

`--url` (comma-separated for failover) and `--token` fall back to DS_URL and DS_TOKEN; the
token is never echoed in `--help`. Errors print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final

from plugin_streams.client import Streams
from plugin_streams.errors import StreamsError
from plugin_streams.models import Message

DEFAULT_URL: Final = "http://127.0.0.1:4437"
URL_ENV: Final = "DS_URL"
TOKEN_ENV: Final = "DS_TOKEN"


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"server URL, or several comma-separated for failover (default: {DEFAULT_URL}) [env: {URL_ENV}]",
    )
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"bearer token [env: {TOKEN_ENV}]")


def client(args: argparse.Namespace, **options: Any) -> Streams:
    return Streams(args.url, args.token, **options)


def emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def message_json(message: Message) -> dict[str, Any]:
    data = message.data
    if isinstance(data, bytes):
        return {"offset": message.offset, "data": base64.b64encode(data).decode("ascii"), "encoding": "base64"}
    return {"offset": message.offset, "data": data}


def fail(text: str) -> int:
    print(f"plugin-streams: error: {text}", file=sys.stderr)
    return 1


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run a subcommand's coroutine; StreamsError → 1, Ctrl-C → 130, a closed stdout → 0."""

    async def guarded() -> int:
        return await main()

    try:
        return asyncio.run(guarded())
    except StreamsError as exc:
        return fail(f"{exc.message} ({exc.code})" if exc.code != "error" else exc.message)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `plugin-streams read s | head`: the reader left; that is not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


class Progress:
    """A one-line counter on stderr, only when stderr is a terminal (never in pipes or logs)."""

    INTERVAL: Final = 0.5

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.enabled = sys.stderr.isatty()
        self._started = self._shown = asyncio.get_running_loop().time() if self.enabled else 0.0

    def step(self, offset: str) -> None:
        self.count += 1
        if not self.enabled:
            return
        now = asyncio.get_running_loop().time()
        if now - self._shown >= self.INTERVAL:
            self._shown = now
            rate = self.count / max(now - self._started, 1e-9)
            sys.stderr.write(f"\r{self.label}: {self.count} messages ({rate:.0f}/s), at {offset}")
            sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write(f"\r{self.label}: {self.count} messages\x1b[K\n")
            sys.stderr.flush()
