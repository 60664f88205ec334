"""OriginConfig: every setting of an origin process, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OriginConfig:
    host: str = "127.0.0.1"
    port: int = 4437
    data_dir: str = "./data"
    engine: str = "file"  # "file" (durable, default) or "memory" (nothing survives a restart)
    fsync: str = "always"  # "always": fdatasync before acknowledging; "never": page cache only
    long_poll_timeout: float = 30.0
    sse_max_age: float = 60.0
    sse_keepalive: float = 15.0
    chunk_size: int = 64 * 1024
    max_body: int = 64 * 1024 * 1024
    sweep_interval: float = 1.0
    shutdown_grace: float = 10.0
    access_log: bool = False
    auth_config: str | None = None  # TOML access policy; None: open (development only)
    public_url: str | None = None  # base URL clients use (a create's Location); None: the address reached
    max_live_connections: int = 10_000
    rate_limit: float = 0.0  # requests per second per client (token or IP); 0: off
    rate_burst: int = 100
    compact_min_bytes: int = 1024 * 1024  # retention reclaims disk once this much is droppable
    tail_cache_bytes: int = 128 * 1024 * 1024  # newest records kept in memory for live readers
