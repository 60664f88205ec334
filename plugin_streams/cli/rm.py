"""`plugin-streams rm NAME...`: delete streams."""

from __future__ import annotations

import argparse

from plugin_streams.cli.common import add_server_flags, client, emit, run_async
from plugin_streams.errors import NotFound

help = "delete streams"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("--missing-ok", action="store_true", help="a stream that does not exist is not an error")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with client(args) as streams:
            for name in args.names:
                try:
                    await streams.delete(name)
                except NotFound:
                    if not args.missing_ok:
                        raise
                    emit({"name": name, "deleted": False})
                    continue
                emit({"name": name, "deleted": True})
        return 0

    return run_async(main)
