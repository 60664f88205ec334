"""The `__ds` routes over HTTP, against an origin on the file engine and a real webhook receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from plugin_streams.origin.app import build_app
from plugin_streams.origin.config import OriginConfig
from plugin_streams.origin.subscriptions.signing import verify_signature
from plugin_streams.shared.auth import AccessPolicy

DS = "/v1/stream/__ds"
JSON = {"Content-Type": "application/json"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Receiver:
    def __init__(self, answers: list[tuple[int, dict[str, Any]]]) -> None:
        self.answers = answers
        self.requests: list[tuple[bytes, str]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.read(), request.headers.get("Webhook-Signature", "")))
        status, answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.arrived.set()
        return web.json_response(answer, status=status)

    async def next(self, count: int) -> tuple[bytes, str]:
        async with asyncio.timeout(5):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests[count - 1]


async def origin(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    config = OriginConfig(data_dir=str(tmp_path))
    return await aiohttp_client(build_app(config, registry=CollectorRegistry(), policy=AccessPolicy()))


async def receiver_url(aiohttp_server: ServerFactory, receiver: Receiver) -> str:
    app = web.Application()
    app.router.add_post("/webhook", receiver.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/webhook"))


async def test_signed_webhook_then_callback_ack_and_fencing(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    client = await origin(aiohttp_client, tmp_path)
    receiver = Receiver([(200, {})])
    config = {
        "type": "webhook",
        "pattern": "events/*",
        "webhook": {"url": await receiver_url(aiohttp_server, receiver)},
    }
    created = await client.put(f"{DS}/subscriptions/s1", json=config)
    assert created.status == 201
    description = await created.json()
    assert "webhook_secret" not in description and description["webhook"]["signing"]["kid"].startswith("ds_")
    jwks_response = await client.get(f"{DS}/jwks.json")
    assert "application/jwk-set+json" in jwks_response.headers["Content-Type"]
    jwks = await jwks_response.json()

    assert (await client.put("/v1/stream/events/a", data=b'{"n":1}', headers=JSON)).status == 201
    raw, signature = await receiver.next(1)
    assert verify_signature(jwks, signature, raw)
    wake = json.loads(raw)
    assert wake["callback_url"].endswith(f"{DS}/subscriptions/s1/callback")
    [stream] = wake["streams"]
    assert stream["path"] == "events/a" and stream["has_pending"] and stream["acked_offset"] == "-1"

    ack = {
        "wake_id": wake["wake_id"],
        "generation": wake["generation"],
        "acks": [{"stream": "events/a", "offset": stream["tail_offset"]}],
        "done": True,
    }
    bearer = {"Authorization": f"Bearer {wake['callback_token']}"}
    assert (await client.post(f"{DS}/subscriptions/s1/callback", json=ack)).status == 401  # no token
    answered = await client.post(f"{DS}/subscriptions/s1/callback", json=ack, headers=bearer)
    assert (answered.status, await answered.json()) == (200, {"ok": True, "next_wake": False})
    replay = await client.post(f"{DS}/subscriptions/s1/callback", json=ack, headers=bearer)
    assert replay.status == 409 and (await replay.json())["error"]["code"] == "FENCED"
    acked = (await (await client.get(f"{DS}/subscriptions/s1")).json())["streams"]
    assert acked == [{"path": "events/a", "link_type": "glob", "acked_offset": stream["tail_offset"]}]


async def test_a_failing_receiver_is_retried_with_status_failed_meanwhile(
    aiohttp_client: ClientFactory, aiohttp_server: ServerFactory, tmp_path: Path
) -> None:
    client = await origin(aiohttp_client, tmp_path)
    receiver = Receiver([(503, {}), (200, {"done": True})])
    config = {"type": "webhook", "streams": ["jobs"], "webhook": {"url": await receiver_url(aiohttp_server, receiver)}}
    assert (await client.put(f"{DS}/subscriptions/r", json=config)).status == 201
    await client.put("/v1/stream/jobs", data=b"x", headers={"Content-Type": "text/plain"})
    await receiver.next(1)
    await asyncio.sleep(0.05)
    assert (await (await client.get(f"{DS}/subscriptions/r")).json())["status"] == "failed"
    first, _ = receiver.requests[0]
    second, _ = await receiver.next(2)  # about a second later (1 s +- 20%)
    assert json.loads(second)["wake_id"] == json.loads(first)["wake_id"]  # the same wake, delivered again
    await asyncio.sleep(0.05)
    body = await (await client.get(f"{DS}/subscriptions/r")).json()
    assert body["status"] == "active"
    assert body["streams"][0]["acked_offset"] == json.loads(second)["streams"][0]["tail_offset"]  # done: auto-ack


async def test_explicit_streams_with_an_encoded_slash(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await origin(aiohttp_client, tmp_path)
    config = {"type": "webhook", "streams": ["manual/a"], "webhook": {"url": "http://127.0.0.1:1/h"}}
    assert (await client.put(f"{DS}/subscriptions/m", json=config)).status == 201
    assert (await client.post(f"{DS}/subscriptions/m/streams", json={"streams": ["manual/b"]})).status == 204
    assert (await client.delete(f"{DS}/subscriptions/m/streams/manual%2Fb")).status == 204
    streams = (await (await client.get(f"{DS}/subscriptions/m")).json())["streams"]
    assert [(s["path"], s["link_type"]) for s in streams] == [("manual/a", "explicit")]
    assert (await client.delete(f"{DS}/subscriptions/m")).status == 204
    assert (await client.get(f"{DS}/subscriptions/m")).status == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "INVALID_REQUEST"),
        (b"[]", "INVALID_REQUEST"),
        (b'{"type": "carrier-pigeon", "pattern": "a/*"}', "INVALID_REQUEST"),
        (b'{"type": "pull-wake", "pattern": "a/*"}', "INVALID_REQUEST"),  # no wake_stream
        (b'{"type": "pull-wake", "pattern": "a/*", "wake_stream": "w", "lease_ttl_ms": 10}', "INVALID_REQUEST"),
        (b'{"type": "pull-wake", "pattern": "a*", "wake_stream": "w"}', "INVALID_REQUEST"),
        (b'{"type": "webhook", "pattern": "a/*", "webhook": {"url": "http://10.0.0.1/hook"}}', "WEBHOOK_URL_REJECTED"),
        (b'{"type": "webhook", "webhook": {"url": "http://127.0.0.1/hook"}}', "INVALID_REQUEST"),  # no streams
    ],
)
async def test_bad_input_is_a_4xx_and_changes_nothing(
    aiohttp_client: ClientFactory, tmp_path: Path, body: bytes, code: str
) -> None:
    client = await origin(aiohttp_client, tmp_path)
    response = await client.put(f"{DS}/subscriptions/bad", data=body, headers=JSON)
    assert response.status == 400 and (await response.json())["error"]["code"] == code
    assert (await client.get(f"{DS}/subscriptions/bad")).status == 404


async def test_the_reserved_prefix_never_names_a_stream(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await origin(aiohttp_client, tmp_path)
    assert (await client.put(f"{DS}/anything", headers={"Content-Type": "text/plain"})).status == 404
    assert (await client.put(DS, headers={"Content-Type": "text/plain"})).status == 404
    assert (await client.post(f"{DS}/jwks.json")).status == 405
    assert (await client.post(f"{DS}/subscriptions/x/claim", json={"worker": "w"})).status == 404


async def test_an_expired_stream_is_unlinked(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    client = await origin(aiohttp_client, tmp_path)
    await client.put("/v1/stream/wake/w", data=b"[]", headers=JSON)
    config = {"type": "pull-wake", "pattern": "tmp/*", "wake_stream": "wake/w"}
    assert (await client.put(f"{DS}/subscriptions/e", json=config)).status == 201
    await client.put("/v1/stream/tmp/a", data=b"x", headers={"Content-Type": "text/plain", "Stream-TTL": "1"})
    await client.put("/v1/stream/tmp/b", data=b"y", headers={"Content-Type": "text/plain"})
    paths = [s["path"] for s in (await (await client.get(f"{DS}/subscriptions/e")).json())["streams"]]
    assert paths == ["tmp/a", "tmp/b"]
    await asyncio.sleep(1.1)
    assert (await client.head("/v1/stream/tmp/a")).status == 404  # expired: the registry says it is gone
    paths = [s["path"] for s in (await (await client.get(f"{DS}/subscriptions/e")).json())["streams"]]
    assert paths == ["tmp/b"]


async def test_appends_through_the_rest_api_wake_subscribers_too(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    """Every append is an event of the service, whichever API made it: a REST append wakes a
    pull-wake subscription (its wake event reaches the wake stream) as a protocol append does."""
    client = await origin(aiohttp_client, tmp_path)
    await client.put("/v1/stream/wake/w", data=b"[]", headers=JSON)
    assert (await client.post("/streams/api/v1/streams", json={"name": "jobs/a"})).status == 201
    config = {"type": "pull-wake", "pattern": "jobs/*", "wake_stream": "wake/w", "lease_ttl_ms": 1000}
    assert (await client.put(f"{DS}/subscriptions/r", json=config)).status == 201

    async def wakes() -> list[Any]:
        events = await (await client.get("/v1/stream/wake/w", params={"offset": "-1"})).json()
        return [e for e in events if e.get("stream") == "jobs/a"]

    await asyncio.sleep(0.3)
    assert await wakes() == []  # linked at its tail: nothing to do yet
    assert (await client.post("/streams/api/v1/streams/jobs%2Fa/append", json={"job": 1})).status == 200
    for _ in range(60):  # the wake is asynchronous: within 3 s
        if await wakes():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("a REST append woke nobody")
