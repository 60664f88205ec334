"""`plugin-streams append NAME [MESSAGE...]`: append messages; prints each one's offset.

Messages come from the arguments, or else from stdin: one per line (JSON lines for JSON
streams, text lines for `text/*`), or all of stdin as one message for binary streams. Lines
are sent in batches, each an atomic append with idempotent-producer headers, so a retried
request never stores anything twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from plugin_streams.cli.common import add_server_flags, client, emit, fail, run_async
from plugin_streams.models import is_json_type
from plugin_streams.stream import Stream

help = "append messages (arguments or stdin lines); prints their offsets"


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("name")
    parser.add_argument("messages", nargs="*", metavar="MESSAGE", help="JSON values for JSON streams, else text")
    parser.add_argument("--batch", type=int, default=100, help="stdin lines per request (JSON streams; at most 10000)")
    parser.add_argument("--close", action="store_true", help="close the stream afterwards")


def _parse(line: str, json_stream: bool) -> Any:
    return json.loads(line) if json_stream else line


async def _send(stream: Stream, batch: list[Any]) -> None:
    for offset in await stream.append_batch(batch):
        emit({"offset": offset})


def run(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with client(args) as streams:
            stream = streams.stream(args.name)
            content_type = (await stream.content_type()).lower()
            json_stream = is_json_type(content_type)
            try:
                if args.messages:
                    await _send(stream, [_parse(m, json_stream) for m in args.messages])
                elif json_stream or content_type.startswith("text/"):
                    batch: list[Any] = []
                    for line in sys.stdin:  # a CLI: blocking on stdin is what it should do
                        text = line.rstrip("\r\n")
                        if json_stream and not text.strip():
                            continue
                        batch.append(_parse(text, json_stream))
                        if len(batch) >= max(1, args.batch):
                            await _send(stream, batch)
                            batch = []
                    if batch:
                        await _send(stream, batch)
                else:
                    await _send(stream, [sys.stdin.buffer.read()])
            except json.JSONDecodeError as exc:
                return fail(f"not JSON ({exc}); JSON streams take JSON values, e.g. '\"text\"' or '{{\"a\": 1}}'")
            if args.close:
                emit({"closed": True, "next_offset": await stream.close()})
        return 0

    return run_async(main)
