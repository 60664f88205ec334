"""OriginConfig: every setting of an origin process, built once from flags and environment.

Each field is declared once, with its default and help (shared.aio.settings.setting): it is the
flag `--field-name`, the variable DS_ORIGIN_FIELD_NAME and a row of README.md's settings table
(tests/test_deploy_settings.py keeps the three in step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from plugin_streams.shared.aio import settings as s

#: 1 MiB: a catch-up GET costs ~0.15 ms of request handling whatever its size, so bigger chunks
#: move more bytes per request (bench/speed.py, a 1 MiB stream walked at c=16 from the origin:
#: 397 MB/s with 64 KiB chunks, 1,864 with 1 MiB, 2,434 with 4 MiB). Beyond 1 MiB the origin
#: gains little while more of a stream sits in its last, incomplete chunk, which no cache may
#: keep: through one edge the same walk ran at 5,007 MB/s with 1 MiB chunks and 3,736 with 4 MiB.
#: Far below what CDNs cache as one object (Electric uses ~10 MB).
DEFAULT_CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OriginConfig:
    host: str = s.setting("127.0.0.1", help="address to listen on")
    port: int = s.setting(4437, type=s.port_number, help="port to listen on (0: any free port)")
    data_dir: str = s.setting("./data", convert=os.path.abspath, help="directory of the embedded storage engine")
    # "file" (durable, default) or "memory" (nothing survives a restart)
    engine: str = s.setting("file", choices=("file", "memory", "postgres"), help="storage engine")
    # postgres: several origins on one database serve every stream (README: Engines).
    database_url: str | None = s.setting(
        None,
        help="PostgreSQL URL of the postgres engine (several hosts: postgresql://u@h1,h2/db?target_session_attrs=read-write)",
    )
    pg_pool_size: int = s.setting(16, type=s.positive_int, help="connections of the postgres engine's pool")
    pg_read_timeout: float = s.setting(
        10.0, type=s.positive_float, help="seconds a postgres read may take (appends never time out)"
    )
    fsync: str = s.setting(
        "always",
        choices=("always", "never"),
        help="always: acknowledge appends only once on disk; never: once in the OS page cache "
        "(survives a process crash, not a power loss)",
    )
    long_poll_timeout: float = s.setting(30.0, type=s.positive_float, help="seconds a long-poll waits")
    sse_max_age: float = s.setting(60.0, type=s.positive_float, help="seconds before an SSE response ends")
    sse_keepalive: float = s.setting(15.0, type=s.positive_float, help="seconds between SSE keep-alives")
    chunk_size: int = s.setting(DEFAULT_CHUNK_SIZE, type=s.positive_int, help="catch-up chunk boundary in bytes")
    max_body: int = s.setting(64 * 1024 * 1024, type=s.positive_int, help="largest request body in bytes (413 beyond)")
    # origin.fast_appends (shared.aio.fast_lane)
    fast_appends: bool = s.setting(
        True,
        type=s.boolean,
        help="take small plain appends through the fast lane (false: every append takes aiohttp's way)",
    )
    sweep_interval: float = s.setting(1.0, type=s.positive_float, help="seconds between expiry sweeps")
    shutdown_grace: float = s.setting(10.0, type=s.positive_float, help="seconds to drain on SIGTERM")
    access_log: bool = s.setting(False, type=s.boolean, help="log one line per request")
    # None: open (development only)
    auth_config: str | None = s.setting(None, help="TOML access policy (tokens, public prefixes, signing key)")
    public_url: str | None = s.setting(
        None,
        type=s.public_url,
        help="base URL clients reach this server by, for the Location of a create (default: the address reached)",
    )
    max_live_connections: int = s.setting(
        10_000, type=s.positive_int, help="open long-polls and SSE responses before 503"
    )
    # Per client (token or IP).
    rate_limit: float = s.setting(0.0, type=float, help="requests/s per client before 429 (0: off)")
    rate_burst: int = s.setting(100, type=s.positive_int, help="requests a client may burst")
    trusted_proxies: tuple[str, ...] = s.setting(
        (),
        type=s.cidr,
        repeatable=True,
        help="address or CIDR of a proxy (edge, CDN) whose X-Forwarded-For names the client for the rate limit",
    )
    sse_client_buffer: int = s.sse_client_buffer(1024 * 1024)
    sse_write_timeout: float = s.sse_write_timeout(30.0)
    header_timeout: float = s.header_timeout(10.0)
    body_timeout: float = s.body_timeout(30.0)
    idle_timeout: float = s.idle_timeout(75.0)
    compact_min_bytes: int = s.setting(
        1024 * 1024,
        type=s.positive_int,
        help="bytes of retention-dropped data that trigger reclaiming disk space",
    )
    tail_cache_bytes: int = s.setting(
        128 * 1024 * 1024,
        type=int,
        help="memory for the newest records of each stream, read by live readers (0: off)",
    )
    kv_snapshot_events: int = s.setting(
        10_000, type=s.positive_int, help="KV events after which a database is snapshotted (file engine)"
    )
    kv_snapshot_seconds: float = s.setting(
        60.0, type=s.positive_float, help="seconds after which a changed KV database is snapshotted"
    )
