"""`plugin-streams tail NAME`: follow a stream live, as JSON lines, until it is closed.

Reconnects by itself (resuming after the last message shown, so nothing repeats or goes
missing), saying so on stderr before each attempt:

    plugin-streams: reconnecting to http://127.0.0.1:4437/streams/api/v1 in 1.2s (connection refused)

After `--give-up-after` seconds (default 60) of failing to reconnect it exits 1 with one line
saying why; `--give-up-after 0` or `--retry-forever` keeps trying. With `--offset-file`, the
offset of each message shown is saved there and a later run resumes after it. Exits 0 when the
stream is closed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Final

from plugin_streams._transport import Transport
from plugin_streams.cli.common import (
    EXIT_OK,
    add_server_flags,
    client,
    emit,
    fail,
    message_json,
    non_negative,
    run_async,
)
from plugin_streams.cli.failures import briefly, describe
from plugin_streams.cli.progress import Progress
from plugin_streams.errors import StreamsError, Unavailable
from plugin_streams.models import Message

help = "follow a stream live (JSON lines), resuming after disconnects"

DEFAULT_GIVE_UP_AFTER: Final = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    add_server_flags(parser)
    parser.add_argument("name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--after", help="offset to start after (default: the start, or the offset file)")
    where.add_argument("--from-now", action="store_true", help="only messages appended from now on")
    parser.add_argument("--offset-file", type=Path, help="resume from, and record progress in, this file")
    parser.add_argument("--long-poll", action="store_true", help="use long-polling instead of SSE")
    add_patience_flags(parser)


def add_patience_flags(parser: argparse.ArgumentParser) -> None:
    """--give-up-after / --retry-forever: how long a live reader keeps reconnecting (see give_up_after)."""
    patience = parser.add_mutually_exclusive_group()
    patience.add_argument(
        "--give-up-after",
        type=non_negative("seconds"),
        default=DEFAULT_GIVE_UP_AFTER,
        metavar="SECONDS",
        help=f"exit 1 after this many seconds of failed reconnects (default: {DEFAULT_GIVE_UP_AFTER:g}; 0: never)",
    )
    patience.add_argument("--retry-forever", action="store_true", help="never give up reconnecting")


def give_up_after(args: argparse.Namespace) -> float | None:
    """Seconds of continuous failure before the tail ends, or None for never."""
    if args.retry_forever or args.give_up_after == 0:
        return None
    return float(args.give_up_after)


class ReconnectReport:
    """Says on stderr, one line per attempt, that the tail is reconnecting, where, and why."""

    def __init__(self, transport: Transport, progress: Progress) -> None:
        self.attempts = 0
        self._transport = transport
        self._progress = progress

    def __call__(self, error: BaseException, delay: float) -> None:
        self.attempts += 1
        self._progress.clear()  # the line starts clean, not after a half-drawn counter
        print(
            f"plugin-streams: reconnecting to {self._transport.base} in {delay:.1f}s ({briefly(error)})",
            file=sys.stderr,
            flush=True,
        )


def save_offset(path: Path, offset: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(offset + "\n")
    os.replace(temporary, path)


def _start_offset(args: argparse.Namespace) -> str | None:
    if args.from_now:
        return "now"
    if args.after is None and args.offset_file is not None and args.offset_file.exists():
        return args.offset_file.read_text().strip() or None
    return str(args.after) if args.after is not None else None


def _retrying_could_fix(error: BaseException) -> bool:
    # What the tail retries: network errors and 5xx/429 answers; not "not found" or "forbidden".
    return isinstance(error, Unavailable) or not isinstance(error, StreamsError)


def run(args: argparse.Namespace) -> int:
    patience = give_up_after(args)

    async def main() -> int:
        progress = Progress(f"tailing {args.name}")

        def show(message: Message) -> None:
            emit(message_json(message))
            progress.step(message.offset)
            if args.offset_file is not None:
                save_offset(args.offset_file, message.offset)

        # Requests outside the live connection (if any) are as patient as the tail itself.
        async with client(args, retry_for=patience or 3600.0, fail_fast=False) as streams:
            report = ReconnectReport(streams.transport, progress)
            handle = streams.stream(args.name).tail(
                _start_offset(args),
                show,
                mode="long-poll" if args.long_poll else "sse",
                on_retry=report,
                give_up_after=patience,
            )
            try:
                await handle.done
            except Exception as exc:
                if patience is None or not report.attempts or not _retrying_could_fix(exc):
                    raise
                progress.clear()
                return fail(f"gave up reconnecting after {patience:g}s (--give-up-after): {describe(exc)}")
            finally:
                progress.finish()
        return EXIT_OK

    return run_async(main)
