"""`plugin-streams ls [--prefix P]`: one JSON line per stream, in name order."""

from __future__ import annotations

import argparse

from plugin_streams.cli.common import add_server_flags, client, emit, run_async

help = "list streams (one JSON line each)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("--prefix", default="", help="only names starting with this")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with client(args) as streams:
            async for info in streams.list(args.prefix):
                emit(info.to_json())
        return 0

    return run_async(main)
