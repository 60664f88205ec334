"""`plugin-streams create NAME`: create a stream (or confirm it exists with these settings)."""

from __future__ import annotations

import argparse

from plugin_streams.cli.common import add_server_flags, client, emit, run_async
from plugin_streams.models import Retention

help = "create a stream (prints its description)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("name", help="stream name (may contain '/')")
    parser.add_argument("--content-type", default="application/json", help="default: application/json")
    parser.add_argument("--ttl", type=int, help="seconds of inactivity before the stream expires")
    parser.add_argument("--retention-max-age", type=int, help="drop data older than this many seconds")
    parser.add_argument("--retention-max-bytes", type=int, help="drop the oldest data beyond this many bytes")
    parser.add_argument("--max-size", type=int, help="largest single append in bytes")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        retention = None
        if args.retention_max_age is not None or args.retention_max_bytes is not None:
            retention = Retention(args.retention_max_age, args.retention_max_bytes)
        async with client(args) as streams:
            await streams.create(
                args.name, args.content_type, retention=retention, max_size=args.max_size, ttl_seconds=args.ttl
            )
            emit((await streams.get(args.name)).to_json())
        return 0

    return run_async(main)
