"""`plugin-streams edge`: flags (each with a DS_EDGE_* variable) → EdgeConfig → serve (N workers)."""

from __future__ import annotations

import argparse
import os

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.shared.aio.settings import (
    Settings,
    add_sse_budget_flags,
    add_timeout_flags,
    boolean,
    port_number,
    positive_float,
    positive_int,
    public_url,
)

PREFIX = "DS_EDGE_"
help = "run an edge: cache, coalescing and fan-out in front of the origin"
_settings: Settings | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    global _settings
    d = EdgeConfig()
    s = Settings(parser, PREFIX)
    s.add("--host", default=d.host, help="address to listen on")
    s.add("--port", type=port_number, default=d.port, help="port to listen on (0: any free port)")
    s.add("--origin", default=d.origin, help="base URL of the origin (or of a nearer edge)")
    s.add("--workers", type=positive_int, default=d.workers, help="processes sharing the port (SO_REUSEPORT)")
    s.add("--cache-memory", type=int, default=d.cache_memory, help="bytes of immutable chunks kept in memory")
    s.add("--cache-dir", default=d.cache_dir, help="directory of the disk cache tier (kept across restarts)")
    s.add("--cache-disk", type=int, default=d.cache_disk, help="bytes of the disk cache tier (0: off)")
    s.add(
        "--cache-fallback-age",
        type=positive_float,
        default=d.cache_fallback_age,
        help="seconds a cached chunk is served while the origin's change feed is not followed "
        "(then deletions reach this edge within it)",
    )
    s.add("--upstream-timeout", type=positive_float, default=d.upstream_timeout, help="seconds to reach the origin")
    s.add(
        "--long-poll-timeout",
        type=positive_float,
        default=d.long_poll_timeout,
        help="the origin's long-poll timeout (bounds upstream waits)",
    )
    s.add("--sse-max-age", type=positive_float, default=d.sse_max_age, help="seconds before an SSE response ends")
    s.add("--sse-keepalive", type=positive_float, default=d.sse_keepalive, help="seconds between SSE keep-alives")
    add_sse_budget_flags(s, buffer=d.sse_client_buffer, write_timeout=d.sse_write_timeout)
    add_timeout_flags(s, header=d.header_timeout, body=d.body_timeout, idle=d.idle_timeout)
    s.add("--auth-config", default=d.auth_config, help="the origin's TOML access policy (checks at the edge)")
    s.add(
        "--public-url",
        type=public_url,
        default=d.public_url,
        help="base URL clients reach this edge by, for the Location of a create (default: the address reached)",
    )
    s.add("--access-log", type=boolean, default=d.access_log, help="log one line per request")
    s.add(
        "--fast-lane",
        type=boolean,
        default=d.fast_lane,
        help="answer plain cached reads and shared long-polls from rendered bytes (false: all take aiohttp's way)",
    )
    s.add("--shutdown-grace", type=positive_float, default=d.shutdown_grace, help="seconds to drain on SIGTERM")
    s.add("--region", default=d.region, help="name of this edge's region: keep a durable regional replica")
    s.add(
        "--replicate",
        default=d.replicate,
        repeatable=True,
        help="with --region: glob of stream paths replicated eagerly (repeatable; '**': all)",
    )
    s.add("--replica-dir", default=d.replica_dir, help="with --region: directory of the regional replica")
    s.add(
        "--replica-idle",
        type=positive_float,
        default=d.replica_idle,
        help="seconds a stream replicated because it was read stays replicated after its last read",
    )
    s.add("--origin-token", default=d.origin_token, help="bearer token the replica shows the origin (read on all)")
    s.add(
        "--link-heartbeat",
        type=positive_float,
        default=d.link_heartbeat,
        help="seconds between change-feed heartbeats; three missed mark the link down",
    )
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    _settings = s


def config_from_args(args: argparse.Namespace) -> EdgeConfig:
    return EdgeConfig(
        host=args.host,
        port=args.port,
        origin=args.origin,
        workers=args.workers,
        cache_memory=args.cache_memory,
        cache_dir=os.path.abspath(args.cache_dir) if args.cache_dir else None,
        cache_disk=args.cache_disk,
        cache_fallback_age=args.cache_fallback_age,
        upstream_timeout=args.upstream_timeout,
        long_poll_timeout=args.long_poll_timeout,
        sse_max_age=args.sse_max_age,
        sse_keepalive=args.sse_keepalive,
        sse_client_buffer=args.sse_client_buffer,
        sse_write_timeout=args.sse_write_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        auth_config=args.auth_config,
        public_url=args.public_url,
        access_log=args.access_log,
        fast_lane=args.fast_lane,
        shutdown_grace=args.shutdown_grace,
        region=args.region,
        replicate=tuple(args.replicate),
        replica_dir=os.path.abspath(args.replica_dir),
        replica_idle=args.replica_idle,
        origin_token=args.origin_token,
        link_heartbeat=args.link_heartbeat,
    )


def run(args: argparse.Namespace) -> int:
    from plugin_streams.edge.app import build_app
    from plugin_streams.edge.workers import supervise
    from plugin_streams.shared.aio.guard import ConnectionTimeouts
    from plugin_streams.shared.aio.serve import serve

    if _settings is not None:
        _settings.check_environment()
    config = config_from_args(args)
    if config.region is not None and config.workers > 1:
        raise SystemExit("--region needs --workers 1: one process owns the replica's storage")
    if config.workers > 1 and not args.reuse_port:
        return supervise(config)
    app = build_app(config)
    return serve(
        app,
        config.host,
        config.port,
        grace=config.shutdown_grace,
        reuse_port=args.reuse_port,
        announce=True,  # a worker tells its supervisor it listens; the supervisor tells the world
        timeouts=ConnectionTimeouts(config.header_timeout, config.body_timeout, config.idle_timeout),
    )
