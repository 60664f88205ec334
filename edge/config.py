"""EdgeConfig: every setting of an edge process, built once from flags and environment.

Each field is declared once, with its default and help (shared.aio.settings.setting): it is the
flag `--field-name`, the variable DS_EDGE_FIELD_NAME and a row of README.md's settings table
(tests/test_deploy_settings.py keeps the three in step).
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from plugin_streams.origin.embed import DEFAULT_CHUNK_SIZE
from plugin_streams.shared.aio import settings as s


def origin_url(text: str) -> str:
    """The origin's base URL, checked at start-up: `127.0.0.1:4437` (no scheme) would otherwise
    only fail at the first request, as an "origin unavailable" every client sees."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected the origin's URL with its scheme, such as http://127.0.0.1:4437")
    try:
        parts.port  # noqa: B018 (a port out of range or not a number raises here)
    except ValueError as exc:
        raise ValueError(f"{exc}: expected a URL such as http://127.0.0.1:4437") from None
    return text.strip().rstrip("/")


def origin_urls(texts: tuple[str, ...]) -> tuple[str, ...]:
    """The origins' base URLs in the order given (the first is asked first), each checked, none twice."""
    checked: list[str] = []
    for text in texts:
        try:
            checked.append(origin_url(text))
        except ValueError as exc:  # with several, say which one
            raise ValueError(str(exc) if len(texts) == 1 else f"{text!r}: {exc}") from None
    urls = tuple(dict.fromkeys(checked))
    if not urls:
        raise ValueError("expected at least one origin URL")
    return urls


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    host: str = s.setting("127.0.0.1", help="address to listen on")
    port: int = s.setting(4438, type=s.port_number, help="port to listen on (0: any free port)")
    origin: tuple[str, ...] = s.setting(
        ("http://127.0.0.1:4437",),
        repeatable=True,
        convert=origin_urls,
        help="base URL of the origin (or of a nearer edge); repeatable: origins serving the same streams, "
        "the first asked first, the next when it fails",
    )
    workers: int = s.setting(1, type=s.positive_int, help="processes sharing the port (SO_REUSEPORT)")
    cache_memory: int = s.setting(256 * 1024 * 1024, type=int, help="bytes of immutable chunks kept in memory")
    cache_dir: str | None = s.setting(
        None, convert=s.absolute_path, help="directory of the disk cache tier (kept across restarts)"
    )
    cache_disk: int = s.setting(0, type=int, help="bytes of the disk cache tier (0: off)")
    cache_fallback_age: float = s.setting(
        5.0,
        type=s.positive_float,
        help="seconds a cached chunk is served while the origin's change feed is not followed "
        "(then deletions reach this edge within it)",
    )
    # Connect + first byte, for requests that are not live reads.
    upstream_timeout: float = s.setting(10.0, type=s.positive_float, help="seconds to reach the origin")
    long_poll_timeout: float = s.setting(
        30.0, type=s.positive_float, help="the origin's long-poll timeout (bounds upstream waits)"
    )
    sse_max_age: float = s.setting(60.0, type=s.positive_float, help="seconds before an SSE response ends")
    sse_keepalive: float = s.setting(15.0, type=s.positive_float, help="seconds between SSE keep-alives")
    sse_client_buffer: int = s.sse_client_buffer(1024 * 1024)
    sse_write_timeout: float = s.sse_write_timeout(30.0)
    header_timeout: float = s.header_timeout(10.0)
    body_timeout: float = s.body_timeout(30.0)
    idle_timeout: float = s.idle_timeout(75.0)
    sse_idle_close: float = s.setting(
        5.0, type=s.positive_float, help="seconds an upstream SSE subscription outlives its last client"
    )
    auth_config: str | None = s.setting(None, help="the origin's TOML access policy (checks at the edge)")
    public_url: str | None = s.setting(
        None,
        type=s.public_url,
        help="base URL clients reach this edge by, for the Location of a create (default: the address reached)",
    )
    access_log: bool = s.setting(False, type=s.boolean, help="log one line per request")
    # shared.aio.fast_lane
    fast_lane: bool = s.setting(
        True,
        type=s.boolean,
        help="answer plain cached reads and shared long-polls from rendered bytes (false: all take aiohttp's way)",
    )
    shutdown_grace: float = s.setting(10.0, type=s.positive_float, help="seconds to drain on SIGTERM")
    # Regions (edge.region): a durable replica of the origin's streams, read locally.
    region: str | None = s.setting(None, help="name of this edge's region: keep a durable regional replica")
    replicate: tuple[str, ...] = s.setting(
        (),
        repeatable=True,
        help="with --region: glob of stream paths replicated eagerly (repeatable; '**': all)",
    )
    replica_dir: str = s.setting(
        "./replica", convert=os.path.abspath, help="with --region: directory of the regional replica"
    )
    replica_idle: float = s.setting(
        300.0,
        type=s.positive_float,
        help="seconds a stream replicated because it was read stays replicated after its last read",
    )
    # The replication API needs read access on "".
    origin_token: str | None = s.setting(None, help="bearer token the replica shows the origin (read on all)")
    link_heartbeat: float = s.setting(
        1.0,
        type=s.positive_float,
        help="seconds between change-feed heartbeats; three missed mark the link down",
    )
    replica_heartbeat: float = s.setting(
        5.0,
        type=s.positive_float,
        help="with --region: seconds between heartbeats of a replicated stream's log feed while it is idle",
    )
    replica_chunk_size: int = s.setting(
        DEFAULT_CHUNK_SIZE,
        type=s.positive_int,
        help="with --region: catch-up chunk boundary of local reads; must be the origin's --chunk-size "
        "(while the origin says otherwise, reads go to the origin)",
    )
