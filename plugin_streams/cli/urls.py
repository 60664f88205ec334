"""Server URLs as typed at a terminal: checked before any request, each mistake named in one line.

aiohttp would take most of these to the network and fail there (a URL without a scheme is read
as a relative path, `localhost:4437` as the scheme "localhost"), so the CLI checks them first:
what is wrong, and where it can guess one, what was meant.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

SCHEMES: Final = ("http", "https")
#: A host name or IPv4 address as urlsplit leaves it (IPv6 literals keep their brackets off).
_HOST: Final = re.compile(r"[A-Za-z0-9._~-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?")


class InvalidURL(ValueError):
    """A server URL the CLI will not try; str() is the one line shown to the user."""


def server_urls(text: str) -> list[str]:
    """`text` split at commas (failover), each checked; raises InvalidURL naming the first bad one."""
    urls = [item.strip() for item in text.split(",") if item.strip()]
    if not urls:
        raise InvalidURL("no server URL given (--url or DS_URL, e.g. http://127.0.0.1:4437)")
    for url in urls:
        check_url(url)
    return urls


def check_url(url: str) -> None:
    """Raise InvalidURL unless `url` is an absolute http(s) URL with a host and a usable port."""
    if any(character.isspace() for character in url):
        raise InvalidURL(f"invalid URL {url!r}: it contains a space")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise InvalidURL(_scheme_problem(url, parts))
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        raise InvalidURL(f"invalid URL {url!r}: no valid host (e.g. http://127.0.0.1:4437)")
    _check_port(url, parts)
    if parts.query or parts.fragment:
        raise InvalidURL(f"invalid URL {url!r}: a server URL has no ?query or #fragment")


def _scheme_problem(url: str, parts: SplitResult) -> str:
    # "localhost:4437" parses as scheme "localhost"; "127.0.0.1:4437" as no scheme at all.
    if not parts.scheme or not parts.netloc:
        return f"invalid URL {url!r}: no http:// or https:// (did you mean http://{url.split('://')[-1].lstrip('/')}?)"
    return f"invalid URL {url!r}: the scheme must be http or https, not {parts.scheme!r}"


def _check_port(url: str, parts: SplitResult) -> None:
    try:
        port = parts.port
    except ValueError:
        text = parts.netloc.rpartition(":")[2]
        raise InvalidURL(f"invalid URL {url!r}: port {text!r} is not a number from 1 to 65535") from None
    if port == 0:
        raise InvalidURL(f"invalid URL {url!r}: port 0 is not a number from 1 to 65535")
