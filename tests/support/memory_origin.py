"""The origin application in-process over the memory engine, behind pytest-aiohttp's test client.

Handler tests that need no real process use `memory_client(**settings)`; the settings are
OriginConfig fields (a 0.3 s long-poll timeout unless given), `policy` the access policy and
`clock_ms` an injected clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.storage import MemoryStore
from plugin_streams.shared.auth import AccessPolicy

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
MemoryClient = Callable[..., Awaitable[Client]]
#: The protocol's stream prefix, as handler tests address streams.
S = "/v1/stream/"


def memory_app(
    policy: AccessPolicy | None = None, clock_ms: Callable[[], int] | None = None, **overrides: object
) -> web.Application:
    """An origin app over a fresh MemoryStore and its own metrics registry (tests never share counters)."""
    settings: dict[str, object] = {"engine": "memory", "long_poll_timeout": 0.3} | overrides
    config = OriginConfig(**settings)  # type: ignore[arg-type]
    extra = {"clock_ms": clock_ms} if clock_ms is not None else {}
    return build_app(
        config, store=MemoryStore(), registry=CollectorRegistry(), policy=policy or AccessPolicy(), **extra
    )


@pytest.fixture
def memory_client(aiohttp_client: AiohttpClient) -> MemoryClient:
    """A factory: `await memory_client(**settings)` is a test client over `memory_app(**settings)`."""

    async def make(
        policy: AccessPolicy | None = None, clock_ms: Callable[[], int] | None = None, **overrides: object
    ) -> Client:
        return await aiohttp_client(memory_app(policy, clock_ms, **overrides))

    return make
