"""One signed webhook POST, and the retry schedule between failed ones."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import aiohttp

from plugin_streams.origin.subscriptions.signing import SigningKey
from plugin_streams.shared import headers as h

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0
JITTER = 0.2
TIMEOUT = aiohttp.ClientTimeout(total=30)


class DeliveryFailed(Exception):
    pass


def retry_delay(failures: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt `failures + 1`: 1 s doubling to 60 s, each ±20% so receivers are not stampeded."""
    base = min(FIRST_RETRY_S * float(2 ** max(0, failures - 1)), MAX_RETRY_S)
    jitter: float = (rng or random).random() * 2 - 1
    return max(0.0, base * (1 + JITTER * jitter))


async def deliver(session: aiohttp.ClientSession, key: SigningKey, url: str, body: bytes) -> dict[str, Any]:
    """POST `body` signed with `key`; the receiver's JSON answer ({} when it sent none). Raises DeliveryFailed."""
    headers = {h.CONTENT_TYPE: "application/json", h.WEBHOOK_SIGNATURE: key.signature_header(body, int(time.time()))}
    try:
        async with session.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False) as response:
            if response.status < 200 or response.status >= 300:
                raise DeliveryFailed(f"receiver answered {response.status}")
            raw = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryFailed(str(exc) or type(exc).__name__) from exc
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
