"""SubscriptionManager: links streams to subscriptions, wakes consumers, and fences stale ones.

A subscription links streams (explicitly, or because they match its glob) each with an acked
offset; a stream whose tail is past its acked offset has pending work. When work is pending and
no wake is live, a wake begins: the generation rises, a wake id is drawn and the tails are
snapshotted; a webhook subscription then POSTs a signed notification (retried 1 s -> 60 s while
the receiver fails, status "failed" meanwhile), a pull-wake one appends a wake event to its wake
stream for workers to claim. Whoever holds the wake (the receiver, or the worker that claimed it)
holds a lease; acks that are not `done` extend it, `done` or `release` ends the wake, and when the
lease runs out the wake is taken back. A callback token is an HMAC of the subscription and the
generation: any token, wake id or generation but the current ones is FENCED.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from plugin_streams.origin.subscriptions import webhooks
from plugin_streams.origin.subscriptions.errors import SubscriptionError, invalid, not_found
from plugin_streams.origin.subscriptions.fencing import CallbackTokens, apply_acks, offset_after
from plugin_streams.origin.subscriptions.globs import matches
from plugin_streams.origin.subscriptions.model import BEFORE_FIRST, Subscription, SubscriptionConfig
from plugin_streams.origin.subscriptions.persistence import SubscriptionFile
from plugin_streams.origin.subscriptions.resolver import PublicResolver
from plugin_streams.origin.subscriptions.signing import SigningKey, b64url, b64url_decode
from plugin_streams.origin.subscriptions.streams import ZERO_OFFSET, StreamView
from plugin_streams.origin.subscriptions.views import ROUTE_PREFIX, describe

logger = logging.getLogger(__name__)


class SubscriptionManager:
    def __init__(self, streams: StreamView, store: SubscriptionFile | None) -> None:
        self.streams = streams
        self.store = store
        self.key = SigningKey.generate()
        self.tokens = CallbackTokens(self.key)
        self.subscriptions: dict[str, Subscription] = {}
        self._leases: dict[str, asyncio.TimerHandle] = {}
        self._deliveries: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        document = await self.store.load() if self.store is not None else None
        if document is None:
            return  # the file (and with it the signing key) is first written with the first subscription
        self.key = SigningKey.from_seed(b64url_decode(document["signing_key"]))
        self.tokens = CallbackTokens(self.key)
        for data in document["subscriptions"]:
            subscription = Subscription.from_json(data)
            self.subscriptions[subscription.id] = subscription
            self._reconcile(subscription)
        for subscription in self.subscriptions.values():
            self._spawn(self._maybe_wake(subscription), "subscription-wake")

    def _reconcile(self, subscription: Subscription) -> None:
        """Catch up with stream changes made while the subscriptions file could not follow them."""
        for path, link in list(subscription.links.items()):
            if link.types == {"glob"} and self.streams.tail_offset(path) is None:
                del subscription.links[path]
        if subscription.config.pattern is not None:
            for path in self.streams.paths():
                if path not in subscription.links and matches(subscription.config.pattern, path):
                    subscription.link(path, "glob", BEFORE_FIRST)  # nothing it wrote may be missed

    async def close(self) -> None:
        self._closing = True
        for handle in self._leases.values():
            handle.cancel()
        tasks = [*self._tasks, *self._deliveries.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("subscription task failed", exc_info=task.exception())

    async def _save(self) -> None:
        if self.store is not None:
            await self.store.save(self._document)

    def _document(self) -> dict[str, Any]:
        return {
            "signing_key": b64url(self.key.seed),
            "subscriptions": [s.to_json() for s in self.subscriptions.values()],
        }

    # -- management -------------------------------------------------------------------------

    def _get(self, subscription_id: str) -> Subscription:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise not_found()
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        return self._get(subscription_id)

    async def create_or_confirm(
        self, subscription_id: str, config: SubscriptionConfig, base_url: str
    ) -> tuple[Subscription, bool]:
        existing = self.subscriptions.get(subscription_id)
        if existing is not None:
            if existing.config.config_hash() != config.config_hash():
                raise SubscriptionError(
                    "SUBSCRIPTION_ALREADY_EXISTS", "subscription already exists with a different configuration"
                )
            return existing, False
        created_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        subscription = Subscription(subscription_id, config, base_url.rstrip("/"), created_at)
        for path in config.streams:
            subscription.link(path, "explicit", self._tail(path))
        if config.pattern is not None:
            for path in self.streams.paths():
                if matches(config.pattern, path):
                    subscription.link(path, "glob", self._tail(path))  # backfill: from now on
        self.subscriptions[subscription_id] = subscription
        await self._save()
        return subscription, True

    async def delete(self, subscription_id: str) -> None:
        if self.subscriptions.pop(subscription_id, None) is None:
            return
        self._clear_lease(subscription_id)
        delivery = self._deliveries.pop(subscription_id, None)
        if delivery is not None:
            delivery.cancel()
        await self._save()

    async def add_streams(self, subscription_id: str, paths: Iterable[str]) -> None:
        subscription = self._get(subscription_id)
        for path in paths:
            subscription.link(path, "explicit", self._tail(path))
        await self._save()

    async def remove_stream(self, subscription_id: str, path: str) -> None:
        subscription = self._get(subscription_id)
        link = subscription.links.get(path)
        if link is None:
            return
        link.types.discard("explicit")
        if not link.types:
            del subscription.links[path]
        await self._save()

    # -- what the streams tell us -----------------------------------------------------------

    def stream_written(self, path: str) -> None:
        """A create or append at `path` is durable: link it where a glob matches, wake whom it concerns."""
        changed = False
        for subscription in list(self.subscriptions.values()):
            pattern = subscription.config.pattern
            if pattern is not None and path not in subscription.links and matches(pattern, path):
                subscription.link(path, "glob", BEFORE_FIRST)  # created here: every byte is new to it
                changed = True
            if path in subscription.links:
                self._spawn(self._maybe_wake(subscription), "subscription-wake")
        if changed:
            self._spawn(self._save(), "subscriptions-save")

    def stream_deleted(self, path: str) -> None:
        changed = False
        for subscription in self.subscriptions.values():
            changed = subscription.links.pop(path, None) is not None or changed
        if changed:
            self._spawn(self._save(), "subscriptions-save")

    # -- wakes ------------------------------------------------------------------------------

    def _tail(self, path: str) -> str:
        return self.streams.tail_offset(path) or ZERO_OFFSET

    def stream_infos(self, subscription: Subscription) -> list[dict[str, Any]]:
        infos = []
        # A copy: looking a tail up can expire its stream, and expiry unlinks it (stream_deleted).
        for link in list(subscription.links.values()):
            tail = self._tail(link.path)
            infos.append(
                {
                    "path": link.path,
                    "link_type": link.link_type,
                    "acked_offset": link.acked_offset,
                    "tail_offset": tail,
                    "has_pending": offset_after(tail, link.acked_offset),
                }
            )
        return infos

    def _pending(self, subscription: Subscription) -> list[str]:
        return [info["path"] for info in self.stream_infos(subscription) if info["has_pending"]]

    async def _maybe_wake(self, subscription: Subscription) -> bool:
        if subscription.wake_id is not None or subscription.holder is not None or self._closing:
            return False
        pending = self._pending(subscription)
        if not pending or self.subscriptions.get(subscription.id) is not subscription:
            return False
        await self._begin_wake(subscription, pending[0])
        return True

    async def _begin_wake(self, subscription: Subscription, triggered_by: str) -> None:
        subscription.generation += 1
        subscription.wake_id = "w_" + secrets.token_hex(12)
        subscription.snapshot = {path: self._tail(path) for path in list(subscription.links)}
        generation = subscription.generation
        await self._save()  # a generation is never handed out twice, even across a crash
        if subscription.generation != generation:
            return
        if subscription.config.type == "webhook":
            self._deliveries[subscription.id] = asyncio.get_running_loop().create_task(
                self._deliver(subscription, subscription.wake_id), name="subscription-webhook"
            )
            return
        await self._append_wake_event(subscription, triggered_by)

    async def _append_wake_event(self, subscription: Subscription, triggered_by: str) -> None:
        wake_stream = subscription.config.wake_stream
        assert wake_stream is not None  # validated for every pull-wake subscription
        event = {
            "type": "wake",
            "subscription_id": subscription.id,
            "stream": triggered_by,
            "generation": subscription.generation,
            "ts": int(time.time() * 1000),
        }
        if not await self.streams.append_json(wake_stream, json.dumps(event).encode()):
            logger.warning("subscription %s: cannot append to its wake stream %s", subscription.id, wake_stream)

    def _notification(self, subscription: Subscription) -> bytes:
        return json.dumps(
            {
                "subscription_id": subscription.id,
                "wake_id": subscription.wake_id,
                "generation": subscription.generation,
                "streams": self.stream_infos(subscription),
                "callback_url": f"{subscription.base_url}{ROUTE_PREFIX}/subscriptions/{subscription.id}/callback",
                "callback_token": self.tokens.issue(subscription),
            },
            separators=(",", ":"),
        ).encode()

    async def _deliver(self, subscription: Subscription, wake_id: str) -> None:
        """POST the wake until the receiver takes it (or the wake ends), backing off between failures."""
        url = subscription.config.webhook_url
        assert url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicResolver()))
        while subscription.wake_id == wake_id:
            try:
                answer = await webhooks.deliver(self._session, self.key, url, self._notification(subscription))
            except webhooks.DeliveryFailed as exc:
                subscription.retry_count += 1
                subscription.status = "failed"
                delay = webhooks.retry_delay(subscription.retry_count)
                logger.warning("subscription %s: webhook failed (%s); retry in %.1f s", subscription.id, exc, delay)
                await asyncio.sleep(delay)
                continue
            subscription.status, subscription.retry_count = "active", 0
            if subscription.wake_id != wake_id:
                return
            if answer.get("done") is True:
                for path, tail in subscription.snapshot.items():
                    if path in subscription.links:
                        subscription.links[path].acked_offset = tail
                await self._finish_wake(subscription)
            else:
                self._extend_lease(subscription)  # the receiver holds the wake now
            return

    # -- leases and fencing -----------------------------------------------------------------

    def _extend_lease(self, subscription: Subscription) -> None:
        self._clear_lease(subscription.id)
        self._leases[subscription.id] = asyncio.get_running_loop().call_later(
            subscription.config.lease_ttl_ms / 1000, self._lease_expired, subscription, subscription.wake_id
        )

    def _clear_lease(self, subscription_id: str) -> None:
        handle = self._leases.pop(subscription_id, None)
        if handle is not None:
            handle.cancel()

    def _lease_expired(self, subscription: Subscription, wake_id: str | None) -> None:
        self._leases.pop(subscription.id, None)
        if subscription.wake_id != wake_id:
            return
        logger.info("subscription %s: lease of generation %d expired", subscription.id, subscription.generation)
        subscription.end_wake()
        self._spawn(self._maybe_wake(subscription), "subscription-wake")

    async def _finish_wake(self, subscription: Subscription) -> bool:
        """End the live wake (acks already applied); True when a next wake began for remaining work."""
        self._clear_lease(subscription.id)
        subscription.end_wake()
        await self._save()
        return await self._maybe_wake(subscription)

    async def acknowledge(self, subscription_id: str, token: str, body: dict[str, Any], *, pull: bool) -> bool:
        """A webhook callback (pull=False) or a pull-wake ack; returns next_wake."""
        subscription = self._get(subscription_id)
        self._require_type(subscription, "pull-wake" if pull else "webhook")
        self.tokens.check(subscription, token, body)
        apply_acks(subscription, body.get("acks"), self._tail)
        if body.get("done") is True:
            return await self._finish_wake(subscription)
        self._extend_lease(subscription)
        await self._save()
        return False

    @staticmethod
    def _require_type(subscription: Subscription, kind: str) -> None:
        if subscription.config.type != kind:
            raise invalid(f"subscription is not {kind}")

    async def claim(self, subscription_id: str, worker: str) -> dict[str, Any]:
        subscription = self._get(subscription_id)
        self._require_type(subscription, "pull-wake")
        if subscription.holder is not None:
            raise _already_claimed(subscription)
        if subscription.wake_id is None:
            pending = self._pending(subscription)
            if not pending:
                raise SubscriptionError("NO_PENDING_WORK", "subscription has no pending work")
            await self._begin_wake(subscription, pending[0])  # don't wait for the wake event
            if subscription.holder is not None:
                raise _already_claimed(subscription)
        subscription.holder = worker
        self._extend_lease(subscription)
        return {
            "wake_id": subscription.wake_id,
            "generation": subscription.generation,
            "token": self.tokens.issue(subscription),
            "streams": self.stream_infos(subscription),
            "lease_ttl_ms": subscription.config.lease_ttl_ms,
        }

    async def release(self, subscription_id: str, token: str, body: dict[str, Any]) -> None:
        subscription = self._get(subscription_id)
        self._require_type(subscription, "pull-wake")
        self.tokens.check(subscription, token, body)
        await self._finish_wake(subscription)

    # -- presentation -----------------------------------------------------------------------

    def describe(self, subscription: Subscription) -> dict[str, Any]:
        return describe(subscription, self.stream_infos(subscription), self.key.kid)


def _already_claimed(subscription: Subscription) -> SubscriptionError:
    return SubscriptionError(
        "ALREADY_CLAIMED",
        "the wake is held by another worker",
        current_holder=subscription.holder,
        generation=subscription.generation,
    )
