"""`plugin-streams tail NAME`: follow a stream live, as JSON lines, until it is closed.

Reconnects by itself (resuming after the last message shown, so nothing repeats or goes
missing). With `--offset-file`, the offset of each message shown is saved there and a later
run resumes after it. Exits 0 when the stream is closed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from plugin_streams.cli.common import add_server_flags, client, emit, message_json, run_async
from plugin_streams.models import Message

help = "follow a stream live (JSON lines), resuming after disconnects"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--after", help="offset to start after (default: the start, or the offset file)")
    where.add_argument("--from-now", action="store_true", help="only messages appended from now on")
    parser.add_argument("--offset-file", type=Path, help="resume from, and record progress in, this file")
    parser.add_argument("--long-poll", action="store_true", help="use long-polling instead of SSE")


def _save(path: Path, offset: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(offset + "\n")
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        after = args.after
        if args.from_now:
            after = "now"
        elif after is None and args.offset_file is not None and args.offset_file.exists():
            after = args.offset_file.read_text().strip() or None

        def show(message: Message) -> None:
            emit(message_json(message))
            if args.offset_file is not None:
                _save(args.offset_file, message.offset)

        async with client(args, retry_for=3600.0) as streams:
            handle = streams.stream(args.name).tail(after, show, mode="long-poll" if args.long_poll else "sse")
            await handle.done
        return 0

    return run_async(main)
