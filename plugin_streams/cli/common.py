"""What every client subcommand shares: server flags, the client, JSON-lines output, errors.

`--url` (comma-separated for failover), `--token` and `--api` fall back to DS_URL, DS_TOKEN and
DS_API; the token is never echoed in `--help`. URLs are checked before any request. The API
spoken follows the URL (a path ending in /v1/stream: the Durable Streams protocol, of any
server; otherwise this project's REST API) unless `--api` says.

Exit status (the same for every client subcommand):

    0    done (for `tail`: the stream was closed)
    1    the operation failed: the server said no (not found, conflict, ...) or could not be
         reached; one line on stderr says what failed
    2    usage: a bad flag or argument, or an invalid URL; one line on stderr
    130  interrupted (Ctrl-C)
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

import aiohttp

from plugin_streams._api import API_NAMES
from plugin_streams.cli.failures import describe
from plugin_streams.cli.urls import InvalidURL, server_urls
from plugin_streams.client import Streams
from plugin_streams.errors import StreamsError
from plugin_streams.models import Message

DEFAULT_URL: Final = "http://127.0.0.1:4437"
URL_ENV: Final = "DS_URL"
TOKEN_ENV: Final = "DS_TOKEN"
API_ENV: Final = "DS_API"

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

#: How long a request keeps trying while every server refuses connections. A person at a
#: terminal who typed the wrong port wants to hear so at once, not after the library's 30 s of
#: retries (which are for servers restarting under a running application); timeouts and 503s
#: still get those retries.
UNREACHABLE_RETRY_FOR: Final = 0.5


def non_negative(unit: str) -> Callable[[str], float]:
    """An argparse type: a number of `unit` >= 0 (NaN refused), named in the error."""

    def parse(text: str) -> float:
        value = float(text)
        if not value >= 0:  # also rejects nan
            raise argparse.ArgumentTypeError(f"not a number of {unit} >= 0: {text!r}")
        return value

    return parse


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"server URL, or several comma-separated for failover (default: {DEFAULT_URL}) [env: {URL_ENV}]",
    )
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"bearer token [env: {TOKEN_ENV}]")
    parser.add_argument(
        "--api",
        choices=API_NAMES,
        default=os.environ.get(API_ENV) or None,
        help="rest (this project's /streams/api/v1) or protocol (Durable Streams, any server); "
        f"default: protocol if the URL's path ends in /v1/stream, else rest [env: {API_ENV}]",
    )


def client(args: argparse.Namespace, *, fail_fast: bool = True, **options: Any) -> Streams:
    """The client for `--url`/`--token`; raises InvalidURL (exit 2) before any request.

    `fail_fast`: give up on a server that refuses connections after UNREACHABLE_RETRY_FOR (a
    `tail` waits instead, for as long as its --give-up-after).
    """
    urls = server_urls(args.url)
    try:
        streams = Streams(urls, args.token, api=args.api, **options)
    except ValueError as exc:  # URLs that speak different APIs, an unknown DS_API
        raise InvalidURL(str(exc)) from None
    if fail_fast:
        streams.transport.unreachable_retry_for = UNREACHABLE_RETRY_FOR
    return streams


def emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def message_json(message: Message) -> dict[str, Any]:
    data = message.data
    if isinstance(data, bytes):
        return {"offset": message.offset, "data": base64.b64encode(data).decode("ascii"), "encoding": "base64"}
    return {"offset": message.offset, "data": data}


def fail(text: str, status: int = EXIT_FAILED) -> int:
    """Say what went wrong in one line on stderr; returns the exit status."""
    print(f"plugin-streams: {text}", file=sys.stderr)
    return status


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    """Run a subcommand's coroutine; every failure of the client becomes one line (see the exit codes)."""

    async def guarded() -> int:
        return await main()

    try:
        return asyncio.run(guarded())
    except InvalidURL as exc:
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `plugin-streams read s | head`: the reader left; that is not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (StreamsError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        return fail(describe(exc))
    except json.JSONDecodeError:
        return fail("the server's answer is not the JSON expected (is --url a plugin-streams server?)")
