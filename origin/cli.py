"""`plugin-streams origin`: flags (each with a DS_ORIGIN_* variable) → OriginConfig → serve."""

from __future__ import annotations

import argparse

from plugin_streams.origin.config import OriginConfig
from plugin_streams.shared.aio.settings import Settings, add_settings, config_from

PREFIX = "DS_ORIGIN_"
help = "run the origin: the authoritative, durable log"
_settings: Settings | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    global _settings
    _settings = Settings(parser, PREFIX)
    add_settings(_settings, OriginConfig)  # one flag per field: the declarations are origin/config.py


def config_from_args(args: argparse.Namespace) -> OriginConfig:
    return config_from(OriginConfig, args)


def run(args: argparse.Namespace) -> int:
    from plugin_streams.origin.app import build_app
    from plugin_streams.shared.aio.guard import ConnectionTimeouts
    from plugin_streams.shared.aio.serve import serve

    if _settings is not None:
        _settings.check_environment()
    config = config_from_args(args)
    timeouts = ConnectionTimeouts(config.header_timeout, config.body_timeout, config.idle_timeout)
    return serve(build_app(config), config.host, config.port, grace=config.shutdown_grace, timeouts=timeouts)
