"""`plugin-streams kv get|set|delete|ls|watch DB ...`: a server's KV store at a terminal.

Keys are written either as a JSON array in the API's wire form (`'["users", {"$bigint": "42"}]'`)
or as a slash path whose parts are strings (`users/alice` is `["users", "alice"]`; `""` or `/`
is the empty key, which as a prefix means every key). Values are JSON (`--string` takes the
argument as a string). Output is JSON lines with keys and values in the wire form: bytes as
`{"$bytes": base64url}`, KvU64 as `{"$u64": "<decimal>"}`, bigints as `{"$bigint": "<decimal>"}`.

`kv watch DB PREFIX...` prints each change (key, op, value, versionstamp, offset, last) from now
on (`--from OFFSET`, `--from-start`, or the `--offset-file` of an earlier run: exactly after the
last commit it finished), reconnecting by itself like `tail` (see there for --give-up-after).
Exit status as every client command (common.py): 0 done, 1 failed, 2 usage, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

from plugin_streams._kv_models import KvChange, KvEntry
from plugin_streams._kv_wire import Key, key_from_wire, key_to_wire, value_to_wire
from plugin_streams.cli.common import EXIT_OK, EXIT_USAGE, add_server_flags, client, emit, fail, non_negative, run_async
from plugin_streams.cli.failures import describe
from plugin_streams.cli.progress import Progress
from plugin_streams.cli.tail import ReconnectReport, add_patience_flags, give_up_after, save_offset

help = "the KV store: get, set, delete, ls and watch keys (JSON lines)"

KEY_HELP: Final = 'a JSON array (\'["users", {"$bigint": "7"}]\') or a slash path of strings (users/alice)'


class BadKey(ValueError):
    """A key argument that is neither a JSON array key nor a slash path (exit 2)."""


def parse_key(text: str) -> Key:
    """A key from the command line: a JSON array in the wire form, or a slash path of strings."""
    if text.lstrip().startswith("["):
        try:
            return key_from_wire(json.loads(text))
        except ValueError as exc:
            raise BadKey(f"not a key ({exc}): {text!r}; a key is {KEY_HELP}") from None
    return tuple(part for part in text.split("/") if part)


def entry_json(entry: KvEntry) -> dict[str, Any]:
    return {"key": key_to_wire(entry.key), "value": value_to_wire(entry.value), "versionstamp": entry.versionstamp}


def change_json(change: KvChange) -> dict[str, Any]:
    line = {
        "key": key_to_wire(change.key),
        "op": change.op,
        "value": value_to_wire(change.value),
        "versionstamp": change.versionstamp,
        "offset": change.offset,
        "last": change.last,
    }
    if change.cause is not None:
        line["cause"] = change.cause
    return line


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="a key's value and versionstamp (null when it has none)")
    _common(get)
    get.add_argument("keys", nargs="+", metavar="KEY", help=KEY_HELP)
    put = actions.add_parser("set", help="store a value at a key; prints the commit's versionstamp and offset")
    _common(put)
    put.add_argument("key", metavar="KEY", help=KEY_HELP)
    put.add_argument("value", metavar="VALUE", help="a JSON value (with --string: any text)")
    put.add_argument("--string", action="store_true", help="take VALUE as a string, not JSON")
    put.add_argument(
        "--expire-in-ms", type=non_negative("milliseconds"), metavar="MS", help="the value expires after this many ms"
    )
    delete = actions.add_parser("delete", help="delete a key")
    _common(delete)
    delete.add_argument("key", metavar="KEY", help=KEY_HELP)
    ls = actions.add_parser("ls", help="entries under a prefix (or between --start and --end), in key order")
    _common(ls)
    ls.add_argument("prefix", nargs="?", metavar="PREFIX", help=f"{KEY_HELP}; default: every key")
    ls.add_argument("--start", metavar="KEY", help="from this key (inclusive)")
    ls.add_argument("--end", metavar="KEY", help="up to this key (exclusive)")
    ls.add_argument("--limit", type=int, help="at most this many entries")
    ls.add_argument("--reverse", action="store_true", help="in reverse key order")
    _configure_watch(actions)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.epilog = f"KEY and PREFIX: {KEY_HELP}; an empty path ('' or /) is the empty key (as a prefix: every key)."
    add_server_flags(parser)
    parser.add_argument("db", metavar="DB", help="the database ([A-Za-z0-9][A-Za-z0-9_.-]*)")


def _configure_watch(actions: Any) -> None:
    watch = actions.add_parser("watch", help="follow committed changes under prefixes, live, resuming exactly")
    _common(watch)
    watch.add_argument("prefixes", nargs="*", metavar="PREFIX", help=f"{KEY_HELP}; default: every key")
    where = watch.add_mutually_exclusive_group()
    where.add_argument("--from", dest="start", metavar="OFFSET", help="changes after this offset (default: now)")
    where.add_argument("--from-start", action="store_true", help="every retained change")
    watch.add_argument("--offset-file", type=Path, help="resume from, and record progress in, this file")
    watch.add_argument("--coalesce", action="store_true", help="only the latest value per key (may skip values)")
    watch.add_argument("--long-poll", action="store_true", help="use long-polling instead of SSE")
    add_patience_flags(watch)


def run(args: argparse.Namespace) -> int:
    try:
        keys = _keys(args)
    except BadKey as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.action == "watch":
        return _watch(args, keys)
    if args.action == "set" and not args.string:
        try:
            args.value = json.loads(args.value)
        except json.JSONDecodeError as exc:
            return fail(f"VALUE is not JSON ({exc}); use --string for text", EXIT_USAGE)
    return run_async(lambda: _once(args, keys))


def _keys(args: argparse.Namespace) -> dict[str, Any]:
    """Every key argument of the action, parsed (BadKey names the first bad one)."""
    parsed: dict[str, Any] = {}
    for name in ("key", "prefix", "start", "end"):
        text = getattr(args, name, None)
        if isinstance(text, str):
            parsed[name] = parse_key(text)
    if args.action == "get":
        parsed["keys"] = [parse_key(text) for text in args.keys]
    if args.action == "watch":
        parsed["prefixes"] = [parse_key(text) for text in args.prefixes] or [()]
    return parsed


async def _once(args: argparse.Namespace, keys: dict[str, Any]) -> int:
    async with client(args) as streams:
        kv = streams.kv(args.db)
        if args.action == "get":
            for key in keys["keys"]:
                entry = await kv.get(key)
                emit(entry_json(entry) | {"offset": entry.offset})
        elif args.action in ("set", "delete"):
            if args.action == "set":
                result = await kv.set(keys["key"], args.value, expire_in_ms=args.expire_in_ms)
            else:
                result = await kv.delete(keys["key"])
            emit({"ok": result.ok, "versionstamp": result.versionstamp, "offset": result.offset})
        else:
            entries = kv.list(
                keys.get("prefix"), start=keys.get("start"), end=keys.get("end"), limit=args.limit, reverse=args.reverse
            )
            async for entry in entries:
                emit(entry_json(entry))
    return EXIT_OK


def _start(args: argparse.Namespace) -> str | None:
    if args.from_start:
        return "-1"
    if args.start is None and args.offset_file is not None and args.offset_file.exists():
        return args.offset_file.read_text().strip() or None
    return str(args.start) if args.start is not None else None


def _watch(args: argparse.Namespace, keys: dict[str, Any]) -> int:
    patience = give_up_after(args)

    async def main() -> int:
        progress = Progress(f"watching {args.db}")

        def show(change: KvChange) -> None:
            emit(change_json(change))
            progress.step(change.offset)
            if change.last and args.offset_file is not None:
                save_offset(args.offset_file, change.offset)

        async with client(args, retry_for=patience or 3600.0, fail_fast=False) as streams:
            report = ReconnectReport(streams.transport, progress)
            watch = streams.kv(args.db).watch(
                keys["prefixes"],
                show,
                durable=not args.coalesce,
                resume_from=_start(args),
                mode="long-poll" if args.long_poll else "sse",
                on_retry=report,
                give_up_after=patience,
            )
            try:
                await watch.done
            except Exception as exc:
                if patience is None or not report.attempts:
                    raise
                progress.clear()
                return fail(f"gave up reconnecting after {patience:g}s (--give-up-after): {describe(exc)}")
            finally:
                progress.finish()
        return EXIT_OK

    return run_async(main)
