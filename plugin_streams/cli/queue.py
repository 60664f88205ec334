"""`plugin-streams queue stats|dlq|redrive DB`: a KV database's queue at a terminal.

`stats` prints one JSON line per consumer group (depth, in flight, redeliveries, dead letters,
oldest message age). `dlq` prints a group's dead letters (id, the change-stream offset that
enqueued it, attempts, reason, last error, value in the wire form). `redrive` moves a group's
dead letters (`--id` ones, or all) back to the queue. Exit status as every client command.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from plugin_streams._kv_wire import value_to_wire
from plugin_streams.cli.common import EXIT_OK, add_server_flags, client, emit, run_async
from plugin_streams.queue import DEFAULT_GROUP

help = "a KV database's queue: consumer group stats, the dead-letter queue, redrive"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    stats = actions.add_parser("stats", help="every consumer group's figures (one JSON line each)")
    _common(stats, group=False)
    dlq = actions.add_parser("dlq", help="a group's dead letters, oldest first")
    _common(dlq)
    dlq.add_argument("--max", type=int, help="stop after this many")
    redrive = actions.add_parser("redrive", help="move dead letters back to the queue")
    _common(redrive)
    redrive.add_argument(
        "--id", dest="ids", action="append", metavar="ID", help="this message (repeatable); default: all of them"
    )


def _common(parser: argparse.ArgumentParser, *, group: bool = True) -> None:
    add_server_flags(parser)
    parser.add_argument("db", metavar="DB", help="the database")
    if group:
        parser.add_argument("--group", default=DEFAULT_GROUP, help=f"the consumer group (default: {DEFAULT_GROUP})")


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with client(args) as streams:
            kv = streams.kv(args.db)
            if args.action == "stats":
                for name, figures in sorted((await kv.queue_stats()).items()):
                    emit({"group": name, **asdict(figures)})
            elif args.action == "dlq":
                shown = 0
                async for letter in kv.queue(args.group).dlq():
                    if args.max is not None and shown >= args.max:
                        break
                    emit(asdict(letter) | {"value": value_to_wire(letter.value)})
                    shown += 1
            else:
                emit({"group": args.group, "redriven": await kv.queue(args.group).redrive(args.ids)})
        return EXIT_OK

    return run_async(main)
