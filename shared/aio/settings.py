"""Command-line flags with environment fallbacks, one prefix per process kind.

Every `--some-flag` can also be set as `<PREFIX>SOME_FLAG`; the flag wins. A variable under the
prefix that names no flag is an error at startup, so a typo in a unit file cannot be ignored.
The settings themselves are declared once, as fields of a server's config dataclass (setting()).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
C = TypeVar("C", bound="DataclassInstance")


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
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
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


# -- settings declared on the config dataclass ------------------------------------------------
# A config field declared with setting() is also a flag (`--field-name`) and an environment
# variable (<PREFIX>FIELD_NAME): its name, default, type and help are written once, on the
# field, and the CLI, the environment and the README table (checked by a test) follow from it.

_SETTING: Final = "plugin_streams.setting"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    #: Given N times on the command line; a comma-separated list in the environment; a tuple.
    repeatable: bool = False
    #: Applied to the value, wherever it came from (e.g. a path made absolute).
    convert: Callable[[Any], Any] | None = None


def setting(
    default: T,
    *,
    help: str,
    type: Callable[[str], Any] = str,
    choices: tuple[str, ...] | None = None,
    repeatable: bool = False,
    convert: Callable[[Any], Any] | None = None,
) -> T:
    """A config field that is also a flag and an environment variable."""
    spec = SettingSpec(help, type, choices, repeatable, convert)
    return dataclasses.field(default=default, metadata={_SETTING: spec})


def flag_of(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def settings_of(config: type[DataclassInstance]) -> list[tuple[dataclasses.Field[Any], SettingSpec]]:
    """The fields of `config` declared with setting(), in declaration order."""
    return [(f, f.metadata[_SETTING]) for f in dataclasses.fields(config) if _SETTING in f.metadata]


def add_settings(settings: Settings, config: type[DataclassInstance]) -> None:
    """A flag, with its environment variable, for every setting of `config`."""
    for field, spec in settings_of(config):
        settings.add(
            flag_of(field.name),
            type=spec.type,
            default=field.default,
            help=spec.help,
            choices=list(spec.choices) if spec.choices is not None else None,
            repeatable=spec.repeatable,
        )


def config_from(config: type[C], args: argparse.Namespace) -> C:
    """`config` built from parsed flags (which already fell back on the environment and defaults)."""
    values: dict[str, Any] = {}
    for field, spec in settings_of(config):
        value = getattr(args, field.name)
        if spec.repeatable:
            value = tuple(value)
        if spec.convert is not None:
            try:
                value = spec.convert(value)
            except (argparse.ArgumentTypeError, ValueError) as exc:
                shown = value[0] if spec.repeatable and len(value) == 1 else value  # as it was given
                refuse(f"invalid {flag_of(field.name)} {shown!r}: {exc}")
        values[field.name] = value
    return config(**values)


def refuse(reason: str) -> NoReturn:
    """Stop at start-up with one line on stderr and exit status 2 (argparse's, for a bad flag)."""
    print(f"plugin-streams: {reason}", file=sys.stderr)
    raise SystemExit(2)


def absolute_path(text: str | None) -> str | None:
    """A directory given relative to where the process starts, fixed before anything changes it."""
    return os.path.abspath(text) if text else None


# Settings both servers have, with the same meaning.


def header_timeout(default: float) -> float:
    """The connection timeouts every server has (shared.aio.guard)."""
    return setting(
        default,
        type=positive_float,
        help="seconds a client has to send a whole request head (from its first byte, or from connecting); 408 after",
    )


def body_timeout(default: float) -> float:
    return setting(
        default,
        type=positive_float,
        help="seconds a request body may go without a byte before the request fails with 408",
    )


def idle_timeout(default: float) -> float:
    return setting(default, type=positive_float, help="seconds an idle keep-alive connection is kept open")


def sse_client_buffer(default: int) -> int:
    """What one SSE client may hold before it is cut off (shared.aio.slow_clients)."""
    return setting(default, type=positive_int, help="bytes queued for one SSE client before it is cut off")


def sse_write_timeout(default: float) -> float:
    return setting(
        default,
        type=positive_float,
        help="seconds an SSE client may leave a write blocked before it is cut off",
    )
