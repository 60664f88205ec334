"""How a subscription is shown to clients (GET and PUT answers)."""

from __future__ import annotations

from typing import Any

from plugin_streams.origin.subscriptions.model import Subscription

ROUTE_PREFIX = "/v1/stream/__ds"


def describe(subscription: Subscription, infos: list[dict[str, Any]], kid: str) -> dict[str, Any]:
    """The JSON of GET/PUT: configuration, links with their acked offsets, status; never a secret."""
    config = subscription.config
    webhook = None
    if config.webhook_url is not None:
        webhook = {
            "url": config.webhook_url,
            "signing": {
                "alg": "ed25519",
                "kid": kid,
                "jwks_url": f"{subscription.base_url}{ROUTE_PREFIX}/jwks.json",
            },
        }
    body: dict[str, Any] = {
        "id": subscription.id,
        "subscription_id": subscription.id,
        "type": config.type,
        "pattern": config.pattern,
        "streams": [{"path": i["path"], "link_type": i["link_type"], "acked_offset": i["acked_offset"]} for i in infos],
        "webhook": webhook,
        "wake_stream": config.wake_stream,
        "lease_ttl_ms": config.lease_ttl_ms,
        "created_at": subscription.created_at,
        "status": subscription.status,
        "description": config.description,
    }
    return {name: value for name, value in body.items() if value is not None}
