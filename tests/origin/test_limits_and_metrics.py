"""Operations: live-connection and rate limits, /metrics, /healthz and /readyz."""

from __future__ import annotations

import asyncio

from plugin_streams.origin.limits import RateLimiter
from plugin_streams.shared.errors import TooManyRequests
from tests.support.memory_origin import MemoryClient, S


async def test_live_connection_limit_is_503_with_jittered_retry_after(memory_client: MemoryClient) -> None:
    client = await memory_client(max_live_connections=2, long_poll_timeout=1.0)
    r = await client.put(S + "s", headers={"Content-Type": "text/plain"})
    tail = r.headers["Stream-Next-Offset"]
    params = {"offset": tail, "live": "long-poll"}
    waiting = [asyncio.ensure_future(client.get(S + "s", params=params)) for _ in range(2)]
    await asyncio.sleep(0.2)
    retry_after = set()
    for _ in range(20):
        refused = await client.get(S + "s", params=params)
        assert refused.status == 503
        assert refused.headers["Cache-Control"] == "no-store"
        retry_after.add(int(refused.headers["Retry-After"]))
    assert len(retry_after) > 1 and all(1 <= value <= 10 for value in retry_after)  # jittered
    assert [r.status for r in await asyncio.gather(*waiting)] == [204, 204]
    # Catch-up reads are not live connections: never refused by this limit.
    assert (await client.get(S + "s")).status == 200


def test_rate_limiter_refills_and_tells_when_to_retry() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    for _ in range(3):
        limiter.check("ip:1", now=100.0)
    try:
        limiter.check("ip:1", now=100.0)
    except TooManyRequests as exc:
        assert exc.headers["Retry-After"] == "1"
    else:
        raise AssertionError("the fourth request in a burst of three must be refused")
    limiter.check("ip:2", now=100.0)  # another client has its own bucket
    limiter.check("ip:1", now=100.5)  # half a second refills one token at 2/s


async def test_rate_limit_answers_429(memory_client: MemoryClient) -> None:
    client = await memory_client(rate_limit=1.0, rate_burst=2)
    statuses = [(await client.get(S + "missing")).status for _ in range(4)]
    assert statuses[:2] == [404, 404]
    assert statuses[2:] == [429, 429]


async def test_metrics_and_health(memory_client: MemoryClient) -> None:
    client = await memory_client()
    await client.put(S + "s", headers={"Content-Type": "text/plain"}, data=b"abc")
    await client.post(S + "s", headers={"Content-Type": "text/plain"}, data=b"de")
    await client.get(S + "s")
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'ds_origin_http_requests_total{method="POST",route="stream",status="204"} 1.0' in text
    assert "ds_origin_appends_total 1.0" in text
    assert "ds_origin_appended_bytes_total 2.0" in text
    assert "ds_origin_commit_batch_records_count 1.0" in text
    assert "ds_origin_streams 1.0" in text
    assert "ds_origin_ready 1.0" in text
    assert "/v1/stream/s" not in text  # never a stream path as a label
    assert "ds_origin_rejected_total" in text
