"""REST stream resources against a real origin: create, describe, list, delete, and errors."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest

from tests.rest.helpers import append, create, read, stream_url


async def test_create_describe_and_idempotent_create(http: aiohttp.ClientSession, api: str, name: str) -> None:
    body = {"name": name, "retention": {"max_age_seconds": 3600, "max_bytes": 1 << 20}, "max_size": 4096}
    async with http.post(api + "/streams", json=body) as r:
        assert r.status == 201
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.headers["Location"] == f"/streams/api/v1/streams/{name.replace('/', '%2F')}"
        created = await r.json()
    assert created["name"] == name
    assert created["content_type"] == "application/json"  # the REST default
    assert created["retention"] == {"max_age_seconds": 3600, "max_bytes": 1 << 20}
    assert created["max_size"] == 4096
    assert created["closed"] is False
    assert created["ttl_seconds"] is None and created["expires_at"] is None
    assert created["created_at"].endswith("Z")
    async with http.post(api + "/streams", json=body) as r:
        assert r.status == 200  # same settings
        assert await r.json() == created
    async with http.get(stream_url(api, name)) as r:
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        assert await r.json() == created


@pytest.mark.parametrize(
    "other",
    [
        {"content_type": "text/plain"},
        {"max_size": 1},
        {"retention": {"max_bytes": 10}},
        {"ttl_seconds": 60},
    ],
)
async def test_create_with_other_settings_is_409(
    http: aiohttp.ClientSession, api: str, name: str, other: dict[str, Any]
) -> None:
    await create(http, api, name)
    async with http.post(api + "/streams", json={"name": name, **other}) as r:
        assert r.status == 409
        error = (await r.json())["error"]
        assert error["code"] == "conflict" and error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b"{}",
        b'{"name": 5}',
        b'{"name": ""}',
        b'{"name": "a//b"}',
        b'{"name": "x", "content_type": "nonsense"}',
        b'{"name": "x", "max_size": 0}',
        b'{"name": "x", "max_size": true}',
        b'{"name": "x", "retention": {"max_age_seconds": -1}}',
        b'{"name": "x", "retention": {"max_agee": 1}}',
        b'{"name": "x", "retention": 5}',
        b'{"name": "x", "ttl_seconds": 5, "expires_at": "2099-01-01T00:00:00Z"}',
        b'{"name": "x", "expires_at": "tomorrow"}',
        b'{"name": "x", "colour": "blue"}',
    ],
)
async def test_bad_create_bodies_are_400(http: aiohttp.ClientSession, api: str, body: bytes) -> None:
    async with http.post(api + "/streams", data=body) as r:
        assert r.status == 400
        assert r.headers["Cache-Control"] == "no-store"
        assert (await r.json())["error"]["code"] == "bad_request"


async def test_text_stream_with_ttl_and_expiry(http: aiohttp.ClientSession, api: str, name: str) -> None:
    made = await create(http, api, name, content_type="text/plain", ttl_seconds=600)
    assert made["content_type"] == "text/plain" and made["ttl_seconds"] == 600
    other = await create(http, api, name + "-x", expires_at="2099-01-01T00:00:00Z")
    assert other["expires_at"] == "2099-01-01T00:00:00Z"


async def test_delete_then_404_everywhere(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    async with http.delete(stream_url(api, name)) as r:
        assert r.status == 204
    for method, action in (("GET", ""), ("DELETE", ""), ("GET", "read"), ("GET", "tail"), ("POST", "append")):
        async with http.request(method, stream_url(api, name, action), data=b"1") as r:
            assert r.status == 404, (method, action)
            assert (await r.json())["error"]["code"] == "not_found"


async def test_deleted_source_of_a_fork_is_410(
    http: aiohttp.ClientSession, api: str, rest_origin: Any, name: str
) -> None:
    await create(http, api, name)
    await append(http, api, name, [1, 2])
    fork = rest_origin.stream_url + name + "-fork"
    headers = {"Stream-Forked-From": "/v1/stream/" + name, "Content-Type": "application/json"}
    async with http.put(fork, headers=headers) as r:
        assert r.status == 201, await r.text()
    async with http.delete(stream_url(api, name)) as r:
        assert r.status == 204
    async with http.get(stream_url(api, name)) as r:
        assert r.status == 410
        assert (await r.json())["error"]["code"] == "gone"
    async with http.post(api + "/streams", json={"name": name}) as r:
        assert r.status == 409  # the path is held by the soft-deleted source


async def test_wrong_methods_are_405_and_unknown_paths_404(http: aiohttp.ClientSession, api: str, name: str) -> None:
    await create(http, api, name)
    for method, action in (("POST", ""), ("GET", "append"), ("POST", "read"), ("DELETE", "tail"), ("PUT", "")):
        async with http.request(method, stream_url(api, name, action)) as r:
            assert r.status == 405, (method, action)
            assert (await r.json())["error"]["code"] == "method_not_allowed"
            assert r.headers["Allow"]
    async with http.get(api + "/elsewhere") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"
    async with http.delete(api + "/streams") as r:
        assert r.status == 405


async def test_names_ending_in_an_action_are_reached_escaped(http: aiohttp.ClientSession, api: str, name: str) -> None:
    odd = name + "/read"
    await create(http, api, odd)
    async with http.get(stream_url(api, odd)) as r:  # .../t%2F...%2Fread: describe
        assert r.status == 200
        assert (await r.json())["name"] == odd
    async with http.get(f"{api}/streams/{odd}/read") as r:  # unescaped: read of `odd`
        assert r.status == 200
        assert (await r.json())["messages"] == []
    async with http.get(f"{api}/streams/{odd}") as r:  # unescaped: read of `name`, which does not exist
        assert r.status == 404


async def test_list_sorted_with_prefix_pagination_and_cursor(http: aiohttp.ClientSession, api: str) -> None:
    prefix = f"list-{uuid.uuid4().hex[:8]}/"
    names = [f"{prefix}{i:02d}" for i in (5, 1, 9, 3, 7, 0, 2)]
    for n in names:
        await create(http, api, n)
    await create(http, api, prefix[:-1] + "-outside")
    seen: list[str] = []
    params = {"prefix": prefix, "limit": "3"}
    pages = 0
    while True:
        async with http.get(api + "/streams", params=params) as r:
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            page = await r.json()
        pages += 1
        assert len(page["streams"]) <= 3
        seen += [s["name"] for s in page["streams"]]
        if page["next_cursor"] is None:
            assert "Link" not in r.headers
            break
        assert 'rel="next"' in r.headers["Link"]
        params["cursor"] = page["next_cursor"]
    assert seen == sorted(names)
    assert pages == 3
    async with http.get(api + "/streams", params={"prefix": prefix, "cursor": "!!"}) as r:
        assert r.status == 400
    async with http.get(api + "/streams", params={"limit": "0"}) as r:
        assert r.status == 400


async def test_list_skips_deleted_streams(http: aiohttp.ClientSession, api: str) -> None:
    prefix = f"gone-{uuid.uuid4().hex[:8]}/"
    for i in range(4):
        await create(http, api, f"{prefix}{i}")
    for i in (0, 2):
        async with http.delete(stream_url(api, f"{prefix}{i}")) as r:
            assert r.status == 204
    async with http.get(api + "/streams", params={"prefix": prefix, "limit": "1"}) as r:
        page = await r.json()
    assert [s["name"] for s in page["streams"]] == [f"{prefix}1"]
    async with http.get(api + "/streams", params={"prefix": prefix, "cursor": page["next_cursor"]}) as r:
        assert [s["name"] for s in (await r.json())["streams"]] == [f"{prefix}3"]


async def test_rest_and_protocol_name_the_same_stream(
    http: aiohttp.ClientSession, api: str, rest_origin: Any, name: str
) -> None:
    await create(http, api, name)
    made = await append(http, api, name, [{"a": 1}, {"a": 2}])
    protocol = rest_origin.stream_url + name
    async with http.get(protocol, params={"offset": made["offsets"][0]}) as r:
        assert r.status == 200
        assert await r.json() == [{"a": 2}]  # a REST offset is a protocol offset
    async with http.post(protocol, data=b'{"a": 3}', headers={"Content-Type": "application/json"}) as r:
        assert r.status == 204
        tail = r.headers["Stream-Next-Offset"]
    page = await read(http, api, name, after=made["offsets"][1])
    assert page["messages"] == [{"offset": tail, "data": {"a": 3}}]
    # And the other way round: a protocol stream described and read through REST.
    async with http.put(protocol + "-p", data=b"hi", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 201
    async with http.get(stream_url(api, name + "-p")) as r:
        assert (await r.json())["content_type"] == "text/plain"
    assert (await read(http, api, name + "-p"))["messages"][0]["data"] == "hi"
