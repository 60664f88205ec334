"""`plugin-streams origin`: flags (each with a DS_ORIGIN_* variable) → OriginConfig → serve."""

from __future__ import annotations

import argparse
import os

from plugin_streams.origin.config import OriginConfig
from plugin_streams.shared.aio.settings import (
    Settings,
    add_sse_budget_flags,
    add_timeout_flags,
    boolean,
    cidr,
    port_number,
    positive_float,
    positive_int,
    public_url,
)

PREFIX = "DS_ORIGIN_"
help = "run the origin: the authoritative, durable log"
_settings: Settings | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    global _settings
    d = OriginConfig()
    s = Settings(parser, PREFIX)
    s.add("--host", default=d.host, help="address to listen on")
    s.add("--port", type=port_number, default=d.port, help="port to listen on (0: any free port)")
    s.add("--data-dir", default=d.data_dir, help="directory of the embedded storage engine")
    s.add("--engine", default=d.engine, choices=["file", "memory"], help="storage engine")
    s.add(
        "--fsync",
        default=d.fsync,
        choices=["always", "never"],
        help="always: acknowledge appends only once on disk; never: once in the OS page cache "
        "(survives a process crash, not a power loss)",
    )
    s.add("--long-poll-timeout", type=positive_float, default=d.long_poll_timeout, help="seconds a long-poll waits")
    s.add("--sse-max-age", type=positive_float, default=d.sse_max_age, help="seconds before an SSE response ends")
    s.add("--sse-keepalive", type=positive_float, default=d.sse_keepalive, help="seconds between SSE keep-alives")
    s.add("--chunk-size", type=positive_int, default=d.chunk_size, help="catch-up chunk boundary in bytes")
    s.add("--max-body", type=positive_int, default=d.max_body, help="largest request body in bytes (413 beyond)")
    s.add("--sweep-interval", type=positive_float, default=d.sweep_interval, help="seconds between expiry sweeps")
    s.add("--shutdown-grace", type=positive_float, default=d.shutdown_grace, help="seconds to drain on SIGTERM")
    s.add("--access-log", type=boolean, default=d.access_log, help="log one line per request")
    s.add("--auth-config", default=d.auth_config, help="TOML access policy (tokens, public prefixes, signing key)")
    s.add(
        "--public-url",
        type=public_url,
        default=d.public_url,
        help="base URL clients reach this server by, for the Location of a create (default: the address reached)",
    )
    s.add(
        "--max-live-connections",
        type=positive_int,
        default=d.max_live_connections,
        help="open long-polls and SSE responses before 503",
    )
    s.add("--rate-limit", type=float, default=d.rate_limit, help="requests/s per client before 429 (0: off)")
    s.add("--rate-burst", type=positive_int, default=d.rate_burst, help="requests a client may burst")
    s.add(
        "--trusted-proxies",
        type=cidr,
        default=d.trusted_proxies,
        repeatable=True,
        help="address or CIDR of a proxy (edge, CDN) whose X-Forwarded-For names the client for the rate limit",
    )
    add_sse_budget_flags(s, buffer=d.sse_client_buffer, write_timeout=d.sse_write_timeout)
    add_timeout_flags(s, header=d.header_timeout, body=d.body_timeout, idle=d.idle_timeout)
    s.add(
        "--tail-cache-bytes",
        type=int,
        default=d.tail_cache_bytes,
        help="memory for the newest records of each stream, read by live readers (0: off)",
    )
    s.add(
        "--compact-min-bytes",
        type=positive_int,
        default=d.compact_min_bytes,
        help="bytes of retention-dropped data that trigger reclaiming disk space",
    )
    _settings = s


def config_from_args(args: argparse.Namespace) -> OriginConfig:
    return OriginConfig(
        host=args.host,
        port=args.port,
        data_dir=os.path.abspath(args.data_dir),
        engine=args.engine,
        fsync=args.fsync,
        long_poll_timeout=args.long_poll_timeout,
        sse_max_age=args.sse_max_age,
        sse_keepalive=args.sse_keepalive,
        chunk_size=args.chunk_size,
        max_body=args.max_body,
        sweep_interval=args.sweep_interval,
        shutdown_grace=args.shutdown_grace,
        access_log=args.access_log,
        auth_config=args.auth_config,
        public_url=args.public_url,
        max_live_connections=args.max_live_connections,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        trusted_proxies=tuple(args.trusted_proxies),
        sse_client_buffer=args.sse_client_buffer,
        sse_write_timeout=args.sse_write_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        compact_min_bytes=args.compact_min_bytes,
        tail_cache_bytes=args.tail_cache_bytes,
    )


def run(args: argparse.Namespace) -> int:
    from plugin_streams.origin.app import build_app
    from plugin_streams.shared.aio.guard import ConnectionTimeouts
    from plugin_streams.shared.aio.serve import serve

    if _settings is not None:
        _settings.check_environment()
    config = config_from_args(args)
    timeouts = ConnectionTimeouts(config.header_timeout, config.body_timeout, config.idle_timeout)
    return serve(build_app(config), config.host, config.port, grace=config.shutdown_grace, timeouts=timeouts)
