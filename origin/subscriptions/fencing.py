"""Fencing: callback tokens bound to a subscription and a generation, and the checks on acks.

A token is `<generation>.<HMAC(subscription id, generation)>` under a secret derived from the
signing key (persisted with it): the origin can tell a forged token (401 TOKEN_INVALID) from a
genuine but stale one (409 FENCED) without remembering every token it ever issued, also after a
restart.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from plugin_streams.origin.subscriptions.errors import SubscriptionError, invalid
from plugin_streams.origin.subscriptions.model import BEFORE_FIRST, Subscription, stream_path
from plugin_streams.origin.subscriptions.signing import SigningKey, b64url


def offset_after(offset: str, other: str) -> bool:
    """offset > other; the fixed-width offsets compare as strings, and "-1" (before the first) is lowest."""
    if offset == BEFORE_FIRST:
        return False
    return other == BEFORE_FIRST or offset > other


class CallbackTokens:
    def __init__(self, key: SigningKey) -> None:
        self._secret = hashlib.sha256(b"ds-callback-token\0" + key.seed).digest()

    def _mac(self, subscription_id: str, generation: int) -> str:
        message = f"{subscription_id}\0{generation}".encode()
        return b64url(hmac.new(self._secret, message, hashlib.sha256).digest())

    def issue(self, subscription: Subscription) -> str:
        return f"{subscription.generation}.{self._mac(subscription.id, subscription.generation)}"

    def check(self, subscription: Subscription, token: str, body: dict[str, Any]) -> None:
        """TOKEN_INVALID unless we issued `token` for this subscription; FENCED unless it is the live wake's."""
        generation_text, _, mac = token.partition(".")
        if not generation_text.isdigit() or not hmac.compare_digest(
            mac, self._mac(subscription.id, int(generation_text))
        ):
            raise SubscriptionError("TOKEN_INVALID", "callback token is not valid for this subscription")
        current = subscription.generation
        if (
            subscription.wake_id is None
            or int(generation_text) != current
            or body.get("generation") != current
            or body.get("wake_id") != subscription.wake_id
        ):
            raise SubscriptionError("FENCED", "wake generation is stale", generation=current)


def apply_acks(subscription: Subscription, acks: object, tail: Callable[[str], str]) -> None:
    """Move acked offsets forward, all or nothing: INVALID_OFFSET for unknown streams, regressions, overshoot."""
    if acks is None:
        return
    if not isinstance(acks, list):
        raise invalid("acks must be an array of {stream, offset}")
    checked: list[tuple[str, str]] = []
    for ack in acks:
        if not isinstance(ack, dict) or not isinstance(ack.get("offset"), str):
            raise invalid("each ack needs a stream and an offset")
        path = stream_path(ack.get("stream", ack.get("path")), "acks[].stream")
        offset: str = ack["offset"]
        link = subscription.links.get(path)
        if link is None:
            raise SubscriptionError("INVALID_OFFSET", f"{path} is not a stream of this subscription")
        if offset == BEFORE_FIRST or offset_after(link.acked_offset, offset):
            raise SubscriptionError("INVALID_OFFSET", f"ack offset for {path} regresses the acked offset")
        if offset_after(offset, tail(path)):
            raise SubscriptionError("INVALID_OFFSET", f"ack offset for {path} is beyond the stream's tail")
        checked.append((path, offset))
    for path, offset in checked:
        subscription.links[path].acked_offset = offset
