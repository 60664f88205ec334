"""`plugin-streams read NAME [--after OFFSET]`: every message up to the tail, as JSON lines.

Each line is `{"offset": ..., "data": ...}`; pass the last offset as `--after` to continue
later. Binary data is base64 (with `"encoding": "base64"`). When stdout goes to a file or pipe
and stderr is a terminal, a spinner with the count so far is shown on stderr while a long read
runs (see progress.py).
"""

from __future__ import annotations

import argparse

from plugin_streams.cli.common import add_server_flags, client, emit, message_json, run_async
from plugin_streams.cli.progress import Progress

help = "read messages after an offset up to the tail (JSON lines)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("name")
    parser.add_argument("--after", help="offset to read after (default: from the start)")
    parser.add_argument("--limit", type=int, help="messages per request (the server's default otherwise)")
    parser.add_argument("--max", type=int, help="stop after this many messages")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with client(args) as streams:
            progress = Progress(f"reading {args.name}")
            try:
                async for message in streams.stream(args.name).read(args.after, limit=args.limit):
                    emit(message_json(message))
                    progress.step(message.offset)
                    if args.max is not None and progress.count >= args.max:
                        break
            finally:
                progress.finish()
        return 0

    return run_async(main)
