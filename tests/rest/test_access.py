"""REST access control against a real origin with a policy file: the protocol's rights, by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.rest.helpers import stream_url
from tests.support.credentials import bearer
from tests.support.processes import OriginProcess

POLICY = """
public_read = ["public/"]

[[token]]
name = "admin"
token = "root"
admin = [""]

[[token]]
name = "writer"
token = "w"
write = ["app/"]

[[token]]
name = "reader"
token = "r"
read = ["app/"]
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("rest-auth")
    (root / "policy.toml").write_text(POLICY)
    with OriginProcess(root / "data", "--auth-config", str(root / "policy.toml")) as process:
        yield process.url + "/streams/api/v1"


async def test_rights_per_endpoint(http: aiohttp.ClientSession, secured: str) -> None:
    api = secured
    async with http.post(api + "/streams", json={"name": "app/s"}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
        assert "Bearer" in r.headers["WWW-Authenticate"]
    async with http.post(api + "/streams", json={"name": "app/s"}, headers=bearer("r")) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "forbidden"
    async with http.post(api + "/streams", json={"name": "app/s"}, headers=bearer("w")) as r:
        assert r.status in (200, 201)
    async with http.post(api + "/streams", json={"name": "public/p"}, headers=bearer("root")) as r:
        assert r.status in (200, 201)
    async with http.post(stream_url(api, "app/s", "append"), data=b"1", headers=bearer("w")) as r:
        assert r.status == 200
    async with http.post(stream_url(api, "app/s", "append"), data=b"1", headers=bearer("r")) as r:
        assert r.status == 403
    cases = [
        ("GET", "", "r", 200),
        ("GET", "read", "r", 200),
        ("GET", "read", None, 401),
        ("GET", "read", "nope", 401),
        ("GET", "tail?mode=long-poll", "w", 200),
        ("DELETE", "", "w", 403),
        ("GET", "", None, 401),
    ]
    for method, action, token, status in cases:
        headers = bearer(token) if token else {}
        async with http.request(method, stream_url(api, "app/s", action), headers=headers) as r:
            assert r.status == status, (method, action, token)
    async with http.get(stream_url(api, "public/p", "read")) as r:
        assert r.status == 200  # public prefix: anyone reads
        assert r.headers["Cache-Control"].startswith("public")
    async with http.get(stream_url(api, "app/s", "read"), headers=bearer("r")) as r:
        assert r.headers["Cache-Control"].startswith("private")
    async with http.delete(stream_url(api, "app/s"), headers=bearer("root")) as r:
        assert r.status == 204


async def test_listing_shows_only_readable_streams(http: aiohttp.ClientSession, secured: str) -> None:
    api = secured
    for name in ("app/l1", "other/l2", "public/l3"):
        async with http.post(api + "/streams", json={"name": name}, headers=bearer("root")) as r:
            assert r.status in (200, 201)

    async def names(headers: dict[str, str]) -> set[str]:
        async with http.get(api + "/streams", headers=headers) as r:
            assert r.status == 200
            return {s["name"] for s in (await r.json())["streams"]}

    assert {"app/l1", "other/l2", "public/l3"} <= await names(bearer("root"))
    reader = await names(bearer("r"))
    assert "app/l1" in reader and "public/l3" in reader and "other/l2" not in reader
    anonymous = await names({})
    assert "public/l3" in anonymous and "app/l1" not in anonymous
    async with http.get(api + "/streams", headers=bearer("wrong")) as r:
        assert r.status == 401
