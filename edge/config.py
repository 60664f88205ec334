"""EdgeConfig: every setting of an edge process, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    host: str = "127.0.0.1"
    port: int = 4438
    origin: str = "http://127.0.0.1:4437"
    workers: int = 1
    cache_memory: int = 256 * 1024 * 1024
    cache_dir: str | None = None
    cache_disk: int = 0
    cache_fallback_age: float = 5.0  # seconds a cached chunk is trusted while the change feed is not followed
    upstream_timeout: float = 10.0  # connect + first byte for non-live upstream requests
    long_poll_timeout: float = 30.0  # the origin's long-poll timeout is the upper bound
    sse_max_age: float = 60.0
    sse_keepalive: float = 15.0
    sse_client_buffer: int = 1024 * 1024  # bytes queued for one slow SSE client before cutting it off
    sse_write_timeout: float = 30.0  # seconds an SSE catch-up write may stay blocked before cutting the client off
    header_timeout: float = 10.0  # seconds to receive a request head (shared.aio.guard)
    body_timeout: float = 30.0  # seconds a request body may go without a byte
    idle_timeout: float = 75.0  # seconds an idle keep-alive connection is kept
    sse_idle_close: float = 5.0  # seconds an upstream SSE subscription outlives its last client
    auth_config: str | None = None
    public_url: str | None = None  # base URL clients use (a create's Location); None: the address reached
    access_log: bool = False
    fast_lane: bool = True  # answer plain cached reads below aiohttp's request machinery (shared.aio.fast_lane)
    shutdown_grace: float = 10.0
    # Regions (edge.region): a durable replica of the origin's streams, read locally.
    region: str | None = None  # set: this edge keeps a regional replica
    replicate: tuple[str, ...] = ()  # path globs replicated eagerly ("**": all)
    replica_dir: str = "./replica"
    replica_idle: float = 300.0  # seconds a stream replicated on read stays after its last read
    origin_token: str | None = None  # bearer token for the replication API (read on "")
    link_heartbeat: float = 1.0  # change feed heartbeat; 3 missed = link down
    replica_heartbeat: float = 5.0  # per-stream log feed heartbeat while idle
