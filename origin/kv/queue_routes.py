"""The queue HTTP API under `/kv/api/v1/{db}/queue`: enqueue, consumer groups, leases and their
answers (fenced), the dead-letter queue, redrive, replay and stats (README, "Queues").

One queue per database, as in Deno; any number of named consumer groups, each fed every message.
A lease may wait (`waitMs`) for a message to become due: the wait is a future on the database's
next queue change or the next due time, never a poll loop.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from plugin_streams.origin.kv import decisions
from plugin_streams.origin.kv.database import KvDatabase
from plugin_streams.origin.kv.databases import KvDatabases
from plugin_streams.origin.kv.http import answer, field_int, field_text, json_body, query_int, receipt
from plugin_streams.origin.kv.queues import GroupStats, UnknownGroup, group_stats
from plugin_streams.origin.kv.queues.decisions import MAX_LEASE_MS, MAX_NAME_CHARS, MIN_LEASE_MS
from plugin_streams.origin.kv.queues.group import DeadLetter
from plugin_streams.origin.kv.queues.records import Leased
from plugin_streams.shared.aio.departure import leaves_with_client
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.commits import AtomicCommit, commit_from_wire
from plugin_streams.shared.kv.routes import MAX_LEASE_WAIT_MS
from plugin_streams.shared.kv.values import Json, decode_value, value_to_wire

DEFAULT_LEASE_MS: Final = 30_000
MAX_LEASE_BATCH: Final = 100
DEFAULT_DLQ_PAGE: Final = 100
#: A message id (origin.kv.events.message_id): a replay from anything else would start nowhere meaningful.
_MESSAGE_ID: Final = re.compile(r"\A[0-9]{16}_[0-9]{16}\.[0-9]{4}\Z")


class QueueRoutes:
    def __init__(self, databases: KvDatabases) -> None:
        self.databases = databases

    def add_to(self, kv: web.Application) -> None:
        kv.router.add_post("/{db}/queue/enqueue", self.enqueue)
        kv.router.add_get("/{db}/queue/stats", self.stats, allow_head=False)
        kv.router.add_get("/{db}/queue/groups", self.groups, allow_head=False)
        kv.router.add_put("/{db}/queue/groups/{group}", self.create_group)
        kv.router.add_post("/{db}/queue/groups/{group}/lease", self.lease)
        kv.router.add_post("/{db}/queue/groups/{group}/ack", self.ack)
        kv.router.add_post("/{db}/queue/groups/{group}/nack", self.nack)
        kv.router.add_post("/{db}/queue/groups/{group}/extend", self.extend)
        kv.router.add_post("/{db}/queue/groups/{group}/term", self.term)
        kv.router.add_post("/{db}/queue/groups/{group}/reset", self.reset)
        kv.router.add_get("/{db}/queue/groups/{group}/dlq", self.dlq, allow_head=False)
        kv.router.add_post("/{db}/queue/groups/{group}/dlq/redrive", self.redrive)

    async def _db(self, request: web.Request) -> KvDatabase:
        return await self.databases.open(request.match_info["db"])

    async def _group_db(self, request: web.Request) -> tuple[KvDatabase, str]:
        """The database and a group that must exist (404 otherwise)."""
        db = await self.databases.find(request.match_info["db"])
        group = request.match_info["group"]
        if db is None or group not in db.queue.groups:
            raise UnknownGroup(f"consumer group {group[:80]!r} does not exist")
        return db, group

    # ---- producing -----------------------------------------------------------------------------

    async def enqueue(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        mutation = {"type": "enqueue", **body}
        atomic = commit_from_wire({"checks": [], "mutations": [mutation]})
        db = await self._db(request)
        written = await db.write(decisions.commit(db, atomic))
        assert written.event is not None
        return answer(receipt(db, written, id=written.event.messages()[0].id))

    # ---- groups --------------------------------------------------------------------------------

    async def groups(self, request: web.Request) -> web.Response:
        db = await self.databases.find(request.match_info["db"])
        names: list[Json] = [] if db is None else [name for name in sorted(db.queue.groups)]
        return answer({"groups": names})

    async def create_group(self, request: web.Request) -> web.Response:
        body = await json_body(request) if request.can_read_body else {}
        start = field_text(body, "from", "-1")
        if start not in ("-1", "now"):
            raise BadRequest('from must be "-1" (every retained message) or "now" (new messages only)')
        db = await self._db(request)
        written = await db.write(decisions.create(db, request.match_info["group"], "" if start == "-1" else None))
        return answer(receipt(db, written), status=201)

    # ---- consuming -----------------------------------------------------------------------------

    async def lease(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        worker = field_text(body, "worker") or ""
        if not 0 < len(worker) <= MAX_NAME_CHARS:
            # Checked before the group is created below: a refused lease must change nothing.
            raise BadRequest(f"worker (the consumer's name, 1 to {MAX_NAME_CHARS} characters) is required")
        lease_ms = field_int(body, "leaseMs", DEFAULT_LEASE_MS, MIN_LEASE_MS, MAX_LEASE_MS)
        count = field_int(body, "max", 1, 1, MAX_LEASE_BATCH)
        wait_ms = field_int(body, "waitMs", 0, 0, MAX_LEASE_WAIT_MS)
        assert lease_ms is not None and count is not None and wait_ms is not None
        db = await self._db(request)
        group = request.match_info["group"]
        if group not in db.queue.groups:
            await db.write(decisions.ensure_group(db, group))
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            if decisions.has_expired_leases(db, db.clock_ms()):
                await db.write(decisions.expire_leases(db))
            changed = db.queue_changed()
            leased = await asyncio.gather(
                *(db.write(decisions.lease_one(db, group, worker, lease_ms)) for _ in range(count))
            )
            records = [written.value for written in leased if written.value is not None]
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                changed.cancel()
                return answer({"messages": [_delivery(db, record) for record in records]})
            # A worker that left while waiting must not be handed a message: it would lose an attempt.
            with leaves_with_client(request):
                await _wait(changed, min(remaining, _until_due(db, group)))

    async def ack(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        token = _token(body)
        atomic_wire = body.get("atomic")
        atomic: AtomicCommit | None = None
        if atomic_wire is not None:
            atomic = commit_from_wire(atomic_wire)
        db, group = await self._group_db(request)
        written = await db.write(decisions.acknowledge(db, group, token, atomic))
        if not written.value:
            return answer({"ok": False}, status=409)
        return answer(receipt(db, written))

    async def nack(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        token, error = _token(body), field_text(body, "error", "") or ""
        delay = field_int(body, "delayMs", None, 0, 30 * 24 * 3_600_000)
        db, group = await self._group_db(request)
        written = await db.write(decisions.negative_ack(db, group, token, error, delay))
        return answer(receipt(db, written, deadLettered=type(written.value).__name__ == "DeadLettered"))

    async def extend(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        lease_ms = field_int(body, "leaseMs", DEFAULT_LEASE_MS, MIN_LEASE_MS, MAX_LEASE_MS)
        assert lease_ms is not None
        db, group = await self._group_db(request)
        written = await db.write(decisions.extend_lease(db, group, _token(body), lease_ms))
        return answer(receipt(db, written, leaseExpiresAt=getattr(written.value, "expires_ms", None)))

    async def term(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        db, group = await self._group_db(request)
        written = await db.write(decisions.terminate(db, group, _token(body), field_text(body, "error", "") or ""))
        return answer(receipt(db, written))

    async def reset(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        start = field_text(body, "from", "-1") or "-1"
        if start != "-1" and not _MESSAGE_ID.match(start):
            raise BadRequest('from must be "-1" or a message id (<commit offset>.<index>, e.g. from a lease)')
        db, group = await self._group_db(request)
        written = await db.write(decisions.reset_group(db, group, "" if start == "-1" else start))
        return answer(receipt(db, written))

    # ---- dead letters and figures --------------------------------------------------------------

    async def dlq(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", DEFAULT_DLQ_PAGE)
        after = request.query.get("after", "")
        db, group = await self._group_db(request)
        await db.readable()
        found = db.queue.groups[group].dead_page(after, limit + 1)
        page = found[:limit]
        entries: list[Json] = [_dead_wire(db, entry) for entry in page]
        return answer({"entries": entries, "next": page[-1].message_id if len(found) > limit else None})

    async def redrive(self, request: web.Request) -> web.Response:
        body = await json_body(request) if request.can_read_body else {}
        ids = body.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise BadRequest("ids must be a list of message ids")
        db, group = await self._group_db(request)
        chosen = None if ids is None else tuple(i for i in ids if isinstance(i, str))
        written = await db.write(decisions.redrive_dead(db, group, chosen))
        return answer(receipt(db, written, redriven=written.value))

    async def stats(self, request: web.Request) -> web.Response:
        db = await self.databases.find(request.match_info["db"])
        if db is None:
            return answer({"groups": {}})
        await db.readable()
        now = db.clock_ms()
        return answer({"groups": {name: _stats_wire(group_stats(db.queue, name, now)) for name in db.queue.groups}})


def _token(body: Mapping[str, Json]) -> int:
    token = field_int(body, "token", None, 1, 2**63 - 1)
    if token is None:
        raise BadRequest("token (the lease's fencing token) is required")
    return token


def _delivery(db: KvDatabase, record: Leased) -> dict[str, Json]:
    message = db.queue.messages[record.message_id]
    return {
        "id": message.id,
        "value": value_to_wire(decode_value(message.value)),
        "attempt": record.attempt,
        "maxAttempts": message.max_attempts,
        "token": record.token,
        "leaseExpiresAt": record.expires_ms,
        "enqueuedAt": message.enqueued_at_ms,
    }


def _dead_wire(db: KvDatabase, entry: DeadLetter) -> dict[str, Json]:
    message = db.queue.messages.get(entry.message_id)
    return {
        "id": entry.message_id,
        "offset": entry.message_id.partition(".")[0],  # the commit that enqueued it (events.message_id)
        "attempts": entry.attempts,
        "reason": str(entry.reason),
        "lastError": entry.last_error,
        "deadAt": entry.dead_at_ms,
        "value": None if message is None else value_to_wire(decode_value(message.value)),
    }


def _stats_wire(stats: GroupStats) -> dict[str, Json]:
    return {
        "depth": stats.depth,
        "inFlight": stats.in_flight,
        "redeliveries": stats.redeliveries,
        "acked": stats.acked,
        "dlq": stats.dead_letters,
        "oldestAgeMs": stats.oldest_age_ms,
    }


def _until_due(db: KvDatabase, group: str) -> float:
    """Seconds until the group's next message is due (or a lease lapses), at most a minute."""
    found = db.queue.groups.get(group)
    now = db.clock_ms()
    moments = [60_000 + now]
    if found is not None:
        head = found.next_ready()
        if head is not None:
            moments.append(head[0])
        moments.extend(lease.expires_ms for lease in found.leases.values())
    return max(0.0, (min(moments) - now) / 1000)


async def _wait(changed: asyncio.Future[None], seconds: float) -> None:
    try:
        async with asyncio.timeout(max(seconds, 0.001)):
            await asyncio.shield(changed)
    except TimeoutError:
        changed.cancel()
