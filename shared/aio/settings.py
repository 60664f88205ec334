"""Command-line flags with environment fallbacks, one prefix per process kind.

Every `--some-flag` can also be set as `<PREFIX>SOME_FLAG`; the flag wins. A variable under the
prefix that names no flag is an error at startup, so a typo in a unit file cannot be ignored.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any


class Settings:
    def __init__(self, parser: argparse.ArgumentParser, prefix: str) -> None:
        self.parser = parser
        self.prefix = prefix
        self._known: set[str] = set()

    def env_name(self, flag: str) -> str:
        return self.prefix + flag.lstrip("-").replace("-", "_").upper()

    def add(
        self,
        flag: str,
        *,
        type: Callable[[str], Any] = str,
        default: Any = None,
        help: str,
        choices: list[str] | None = None,
        environ: Mapping[str, str] | None = None,
        repeatable: bool = False,
    ) -> None:
        env = self.env_name(flag)
        self._known.add(env)
        environ = os.environ if environ is None else environ
        if repeatable:
            # Given N times on the command line (replacing the environment's comma-separated list).
            if env in environ:
                default = tuple(type(v.strip()) for v in environ[env].split(",") if v.strip())
            shown = f" (default: {', '.join(default)})" if default else ""
            self.parser.add_argument(
                flag, type=type, default=default, action=_Repeated, help=f"{help}{shown} [env: {env}, comma-separated]"
            )
            return
        if env in environ:
            try:
                default = type(environ[env])
            except (TypeError, ValueError) as exc:
                raise SystemExit(f"{env}: {exc}") from None
        shown = "" if default is None else f" (default: {default})"
        self.parser.add_argument(flag, type=type, default=default, choices=choices, help=f"{help}{shown} [env: {env}]")

    def check_environment(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        unknown = sorted(name for name in environ if name.startswith(self.prefix) and name not in self._known)
        if unknown:
            raise SystemExit(f"unknown setting(s) in the environment: {', '.join(unknown)}")


class _Repeated(argparse.Action):
    """Like "append", but the first use on the command line replaces the default."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        current = getattr(namespace, self.dest)
        base = () if current is self.default else tuple(current)
        setattr(namespace, self.dest, (*base, values))


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535")
    return value


def boolean(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def cidr(text: str) -> str:
    """An address or network (`10.0.0.0/8`, `::1`), checked here, kept as text."""
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def public_url(text: str) -> str:
    """A base URL clients use (`https://streams.example.com`): absolute http(s), no query; no trailing /."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError("expected an absolute http(s) URL such as https://streams.example.com")
    return text.strip().rstrip("/")


def add_timeout_flags(settings: Settings, *, header: float, body: float, idle: float) -> None:
    """The connection timeouts every server has (shared.aio.guard)."""
    settings.add(
        "--header-timeout",
        type=positive_float,
        default=header,
        help="seconds a client has to send a whole request head (from its first byte, or from connecting); 408 after",
    )
    settings.add(
        "--body-timeout",
        type=positive_float,
        default=body,
        help="seconds a request body may go without a byte before the request fails with 408",
    )
    settings.add(
        "--idle-timeout",
        type=positive_float,
        default=idle,
        help="seconds an idle keep-alive connection is kept open",
    )


def add_sse_budget_flags(settings: Settings, *, buffer: int, write_timeout: float) -> None:
    """What one SSE client may hold before it is cut off (shared.aio.slow_clients)."""
    settings.add(
        "--sse-client-buffer",
        type=positive_int,
        default=buffer,
        help="bytes queued for one SSE client before it is cut off",
    )
    settings.add(
        "--sse-write-timeout",
        type=positive_float,
        default=write_timeout,
        help="seconds an SSE client may leave a write blocked before it is cut off",
    )
