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
    # Peers (CIDRs) whose X-Forwarded-For names the client the rate limit keys on (an edge, a CDN).
    trusted_proxies: tuple[str, ...] = ()
    sse_client_buffer: int = 1024 * 1024  # bytes queued for one SSE client before cutting it off
    sse_write_timeout: float = 30.0  # seconds an SSE write may stay blocked before cutting the client off
    header_timeout: float = 10.0  # seconds to receive a request head (shared.aio.guard)
    body_timeout: float = 30.0  # seconds a request body may go without a byte
    idle_timeout: float = 75.0  # seconds an idle keep-alive connection is kept
    compact_min_bytes: int = 1024 * 1024  # retention reclaims disk once this much is droppable
    tail_cache_bytes: int = 128 * 1024 * 1024  # newest records kept in memory for live readers
