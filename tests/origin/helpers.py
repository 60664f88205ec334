"""In-process origin apps for handler tests (pytest-aiohttp's aiohttp_client)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared.auth import AccessPolicy

Client = TestClient[web.Request, web.Application]
S = "/v1/stream/"


def memory_app(
    policy: AccessPolicy | None = None, clock_ms: Callable[[], int] | None = None, **overrides: object
) -> web.Application:
    settings: dict[str, object] = {"engine": "memory", "long_poll_timeout": 0.3} | overrides
    config = OriginConfig(**settings)  # type: ignore[arg-type]
    extra = {"clock_ms": clock_ms} if clock_ms is not None else {}
    return build_app(
        config, store=MemoryStore(), registry=CollectorRegistry(), policy=policy or AccessPolicy(), **extra
    )
