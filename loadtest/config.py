"""Load-test settings, read once from DS_LOAD_* environment variables (see README.md)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

MODES = ("long-poll", "sse", "mixed")


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    value = int(raw) if raw else default
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    value = float(raw) if raw else default
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class LoadConfig:
    streams: int = 1
    mode: str = "mixed"
    writers: int = 1
    write_interval: float = 0.1
    message_bytes: int = 0
    sse_share: float = 0.5
    prefix: str = "loadtest"
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    stream_ttl: int = 3600
    write_host: str = ""
    authorization: str = ""
    network_timeout: float = 75.0
    write_retries: int = 5
    metrics_origin: str = ""
    metrics_edge: str = ""
    report_json: str = ""
    shape: str = ""
    peak_users: int = 0
    duration: float = 0.0

    def stream_path(self, index: int) -> str:
        return f"/v1/stream/{self.prefix}-{self.run_id}-{index}"

    def streams_of_writer(self, writer_index: int) -> list[int]:
        """Streams are dealt round-robin to writers; with more writers than streams, writers share streams."""
        if self.writers <= self.streams:
            return [s for s in range(self.streams) if s % self.writers == writer_index % self.writers]
        return [writer_index % self.streams]

    def writers_of_stream(self, stream_index: int) -> list[int]:
        return [w for w in range(self.writers) if stream_index in self.streams_of_writer(w)]


def from_env() -> LoadConfig:
    shape = _str("DS_LOAD_SHAPE").lower()
    mode = _str("DS_LOAD_MODE", "mixed").lower()
    if mode == "longpoll":
        mode = "long-poll"
    if mode not in MODES:
        raise ValueError(f"DS_LOAD_MODE must be one of {MODES}, got {mode!r}")
    sse_share = _float("DS_LOAD_SSE_SHARE", 0.5)
    if not 0.0 <= sse_share <= 1.0:
        raise ValueError("DS_LOAD_SSE_SHARE must be between 0 and 1")
    kwargs = {}
    run_id = _str("DS_LOAD_RUN_ID")
    if run_id:
        kwargs["run_id"] = run_id
    return LoadConfig(
        streams=_int("DS_LOAD_STREAMS", 1, 1),
        mode=mode,
        writers=_int("DS_LOAD_WRITERS", 1, 1),
        write_interval=_float("DS_LOAD_WRITE_INTERVAL", 0.1),
        message_bytes=_int("DS_LOAD_MESSAGE_BYTES", 0),
        sse_share=sse_share,
        prefix=_str("DS_LOAD_STREAM_PREFIX", "loadtest"),
        stream_ttl=_int("DS_LOAD_STREAM_TTL", 3600),
        write_host=_str("DS_LOAD_WRITE_HOST").rstrip("/"),
        authorization=_str("DS_LOAD_AUTHORIZATION"),
        network_timeout=_float("DS_LOAD_NETWORK_TIMEOUT", 75.0, 1.0),
        write_retries=_int("DS_LOAD_WRITE_RETRIES", 5),
        metrics_origin=_str("DS_LOAD_METRICS_URL_ORIGIN"),
        metrics_edge=_str("DS_LOAD_METRICS_URL_EDGE"),
        report_json=_str("DS_LOAD_REPORT_JSON"),
        shape=shape,
        peak_users=_int("DS_LOAD_PEAK_USERS", 0),
        duration=_float("DS_LOAD_DURATION", 0.0),
        **kwargs,
    )


CONFIG = from_env()
