"""Fixtures for REST API tests: one real origin per module (small chunks), an HTTP session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.support.processes import OriginProcess

#: Small catch-up chunks, so that a few messages already span several pages.
CHUNK = "1024"


@pytest.fixture(scope="module")
def rest_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    data = tmp_path_factory.mktemp("rest") / "data"
    with OriginProcess(data, "--chunk-size", CHUNK, "--sse-keepalive", "0.3") as process:
        yield process


@pytest.fixture
def api(rest_origin: OriginProcess) -> str:
    return rest_origin.url + "/streams/api/v1"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh stream name per test (with a '/' in it, as names may have)."""
    return f"t/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
