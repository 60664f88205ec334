"""`plugin-streams edge`: flags (each with a DS_EDGE_* variable) → EdgeConfig → serve (N workers)."""

from __future__ import annotations

import argparse

from plugin_streams.edge.config import EdgeConfig
from plugin_streams.shared.aio.settings import Settings, add_settings, config_from

PREFIX = "DS_EDGE_"
help = "run an edge: cache, coalescing and fan-out in front of the origin"
_settings: Settings | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    global _settings
    _settings = Settings(parser, PREFIX)
    add_settings(_settings, EdgeConfig)  # one flag per field: the declarations are edge/config.py
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace) -> EdgeConfig:
    return config_from(EdgeConfig, args)


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
