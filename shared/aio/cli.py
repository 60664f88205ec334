"""`plugin-streams`: one console script, one subcommand per process kind.

Subcommands are discovered from the `plugin_streams.commands` entry-point group, so `shared`
never imports `origin` or `edge`. Each entry point names a module attribute with
`configure(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Protocol

from plugin_streams.shared.aio import parse_errors_log


class Command(Protocol):
    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def version_line() -> str:
    """`plugin-streams <version>`: the installed distribution's, else the package's __version__."""
    try:
        return f"plugin-streams {version('plugin-streams')}"
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        import plugin_streams

        return f"plugin-streams {getattr(plugin_streams, '__version__', 'unknown')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plugin-streams", description="Durable Streams server")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    # On every subcommand too: `plugin-streams tail --version` is what someone types first.
    release = version_line()
    parser.add_argument("--version", action="version", version=release)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Command] = {}
    for entry in sorted(entry_points(group="plugin_streams.commands"), key=lambda e: e.name):
        try:
            command: Command = entry.load()
        except ImportError as exc:  # the servers' dependencies come with plugin-streams[server]
            command = _Missing(entry.name, exc)
        commands[entry.name] = command
        command_parser = sub.add_parser(entry.name, help=command.help, description=command.help)
        command_parser.add_argument("--version", action="version", version=release)
        command.configure(command_parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    parse_errors_log.install()
    try:
        return commands[args.command].run(args)
    except ModuleNotFoundError as exc:
        # Commands import their heavy dependencies when they run, so a client-only install
        # (`pip install plugin-streams`) learns here, not from a traceback, what the servers need.
        if exc.name is None or exc.name.partition(".")[0] == "plugin_streams":
            raise
        return _Missing(args.command, exc).run(args)


class _Missing:
    """A subcommand whose dependencies are not installed: it says which, and exits 2."""

    def __init__(self, name: str, error: ImportError) -> None:
        self.name = name
        self.error = error
        self.help = f"(not installed: pip install 'plugin-streams[server]' for `{name}`)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("args", nargs=argparse.REMAINDER)

    def run(self, args: argparse.Namespace) -> int:
        print(f"plugin-streams {self.name}: {self.error}; pip install 'plugin-streams[server]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
