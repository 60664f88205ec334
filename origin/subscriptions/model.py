"""What a subscription is: its configuration (validated from a PUT body), links and wake state.

The configuration, the links with their acked offsets and the generation counter are durable (see
persistence.py); the live wake (wake id, holder, lease, delivery retries) lives only in memory, so
a restart fences every wake that was in flight: the next wake takes a higher generation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from plugin_streams.origin.subscriptions.errors import SubscriptionError, invalid
from plugin_streams.origin.subscriptions.globs import validate_pattern
from plugin_streams.origin.subscriptions.urls import webhook_url_problem
from plugin_streams.shared.paths import validate_path

DEFAULT_LEASE_TTL_MS = 30_000
MIN_LEASE_TTL_MS = 1_000
MAX_LEASE_TTL_MS = 10 * 60_000
BEFORE_FIRST = "-1"  # acked offset of a stream linked before its first append
MAX_ID_LENGTH = 256

SubscriptionType = Literal["webhook", "pull-wake"]
LinkType = Literal["glob", "explicit"]


def stream_path(value: object, what: str) -> str:
    """A stream path from a request body, relative to the stream root, validated as the protocol does."""
    if not isinstance(value, str) or not value.strip("/"):
        raise invalid(f"{what} must be a non-empty stream path")
    path = value.strip("/")
    if path == "__ds" or path.startswith("__ds/"):
        raise invalid(f"{what} must not be under the reserved __ds prefix")
    try:
        return validate_path(path)
    except Exception as exc:
        raise invalid(f"{what}: {exc}") from None


@dataclass(frozen=True)
class SubscriptionConfig:
    type: SubscriptionType
    pattern: str | None
    streams: tuple[str, ...]
    webhook_url: str | None
    wake_stream: str | None
    lease_ttl_ms: int
    description: str | None

    def config_hash(self) -> str:
        canonical = {
            "type": self.type,
            "pattern": self.pattern,
            "streams": sorted(set(self.streams)),
            "webhook": self.webhook_url,
            "wake_stream": self.wake_stream,
            "lease_ttl_ms": self.lease_ttl_ms,
            "description": self.description,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "pattern": self.pattern,
            "streams": list(self.streams),
            "webhook": {"url": self.webhook_url} if self.webhook_url is not None else None,
            "wake_stream": self.wake_stream,
            "lease_ttl_ms": self.lease_ttl_ms,
            "description": self.description,
        }


def validate_id(subscription_id: str) -> str:
    if not subscription_id or len(subscription_id) > MAX_ID_LENGTH or "/" in subscription_id:
        raise invalid(f"subscription id must be 1-{MAX_ID_LENGTH} characters without '/'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in subscription_id):
        raise invalid("subscription id contains control characters")
    return subscription_id


def _lease(value: object) -> int:
    if value is None:
        return DEFAULT_LEASE_TTL_MS
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("lease_ttl_ms must be an integer")
    if not MIN_LEASE_TTL_MS <= value <= MAX_LEASE_TTL_MS:
        raise invalid(f"lease_ttl_ms must be between {MIN_LEASE_TTL_MS} and {MAX_LEASE_TTL_MS}")
    return value


def _pattern(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid("pattern must be a string")
    problem = validate_pattern(value)
    if problem is not None:
        raise invalid(problem)
    return value


def _streams(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("streams must be an array of stream paths")
    return tuple(dict.fromkeys(stream_path(item, "streams[]") for item in value))


def _webhook_url(kind: str, value: object) -> str | None:
    if kind != "webhook":
        if value is not None:
            raise invalid("only webhook subscriptions take webhook")
        return None
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise invalid("webhook subscriptions require webhook.url")
    url: str = value["url"]
    problem = webhook_url_problem(url)
    if problem is not None:
        raise SubscriptionError("WEBHOOK_URL_REJECTED", problem)
    return url


def _wake_stream(kind: str, value: object) -> str | None:
    if kind != "pull-wake":
        if value is not None:
            raise invalid("only pull-wake subscriptions take wake_stream")
        return None
    if value is None:
        raise invalid("pull-wake subscriptions require wake_stream")
    return stream_path(value, "wake_stream")


def parse_config(body: object) -> SubscriptionConfig:
    """The configuration of a PUT body, or INVALID_REQUEST / WEBHOOK_URL_REJECTED naming the problem."""
    if not isinstance(body, dict):
        raise invalid("body must be a JSON object")
    kind = body.get("type")
    if kind not in ("webhook", "pull-wake"):
        raise invalid("type must be 'webhook' or 'pull-wake'")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid("description must be a string")
    config = SubscriptionConfig(
        type=kind,
        pattern=_pattern(body.get("pattern")),
        streams=_streams(body.get("streams")),
        webhook_url=_webhook_url(kind, body.get("webhook")),
        wake_stream=_wake_stream(kind, body.get("wake_stream")),
        lease_ttl_ms=_lease(body.get("lease_ttl_ms")),
        description=description,
    )
    if config.pattern is None and not config.streams:
        raise invalid("a subscription needs a pattern, explicit streams, or both")
    return config


@dataclass
class Link:
    path: str
    types: set[LinkType]
    acked_offset: str

    @property
    def link_type(self) -> LinkType:
        return "explicit" if "explicit" in self.types else "glob"


@dataclass
class Subscription:
    id: str
    config: SubscriptionConfig
    base_url: str  # where clients reached us at creation: callback and JWKS URLs are built from it
    created_at: str
    generation: int = 0
    links: dict[str, Link] = field(default_factory=dict)
    # -- in memory only: the live wake --
    status: str = "active"
    wake_id: str | None = None
    holder: str | None = None
    snapshot: dict[str, str] = field(default_factory=dict)  # path -> tail offset when the wake began
    retry_count: int = 0

    def link(self, path: str, link_type: LinkType, acked_offset: str) -> None:
        existing = self.links.get(path)
        if existing is not None:
            existing.types.add(link_type)
        else:
            self.links[path] = Link(path, {link_type}, acked_offset)

    def end_wake(self) -> None:
        self.wake_id = None
        self.holder = None
        self.snapshot = {}

    def to_json(self) -> dict[str, Any]:
        """The durable part, for persistence.py."""
        return {
            "id": self.id,
            "config": self.config.to_json(),
            "base_url": self.base_url,
            "created_at": self.created_at,
            "generation": self.generation,
            "links": [
                {"path": k.path, "types": sorted(k.types), "acked_offset": k.acked_offset} for k in self.links.values()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subscription:
        config = data["config"]
        webhook = config.get("webhook")
        subscription = cls(
            id=data["id"],
            config=SubscriptionConfig(
                type=config["type"],
                pattern=config.get("pattern"),
                streams=tuple(config.get("streams") or ()),
                webhook_url=webhook["url"] if webhook else None,
                wake_stream=config.get("wake_stream"),
                lease_ttl_ms=int(config["lease_ttl_ms"]),
                description=config.get("description"),
            ),
            base_url=data["base_url"],
            created_at=data["created_at"],
            generation=int(data["generation"]),
        )
        for link in data["links"]:
            subscription.links[link["path"]] = Link(link["path"], set(link["types"]), link["acked_offset"])
        return subscription
