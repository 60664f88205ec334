"""A database's queue as one consumer group sees it: leases, answers, the dead-letter queue, replay.

One queue per database (as in Deno), any number of consumer groups; each group receives every
message. `kv.queue("billing")` is the group "billing" (created on first use, from the first
retained message). Most code wants `kv.listen_queue(handler)`; these are the calls under it:

    queue = kv.queue("billing")
    [message] = await queue.lease("worker-1", lease_ms=30_000, wait_ms=5_000)
    await queue.ack(message.token, kv.atomic().set(("done", message.id), True))  # effect + ack, one commit

Every answer is fenced by the lease's token: after the lease expired (and the message went to
another worker), after an earlier answer, or after a reset, an ack/nack/extend/term raises
`Fenced` and changes nothing. A failed check in an ack's atomic answers `CommitResult(ok=False)`
and the message stays leased.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from plugin_streams._kv_atomic import AtomicBuilder
from plugin_streams._kv_models import CommitResult, DeadLetter, GroupStats, QueueMessage, Token

if TYPE_CHECKING:
    from plugin_streams._kv_http import KvConnection

DEFAULT_GROUP: Final = "default"
DEFAULT_LEASE_MS: Final = 30_000
#: The longest `wait_ms` the server holds a lease request (its contract: 0..30000).
MAX_WAIT_MS: Final = 30_000


class Queue:
    def __init__(self, connection: KvConnection, db: str, group: str = DEFAULT_GROUP) -> None:
        if not group:
            raise ValueError("a consumer group needs a name")
        self.db = db
        self.group = group
        self._connection = connection
        self._path = f"/queue/groups/{quote(group, safe='')}"

    def __repr__(self) -> str:
        return f"Queue(db={self.db!r}, group={self.group!r})"

    async def _post(self, action: str, body: Any, *, idempotent: bool = True, read_timeout: float | None = None) -> Any:
        _, answer = await self._connection.call(
            "POST", self.db, f"{self._path}/{action}", body=body, idempotent=idempotent, read_timeout=read_timeout
        )
        return answer

    async def create(self, start: str = "-1") -> None:
        """Create the group, reading from the first retained message ("-1") or from "now"."""
        await self._connection.call("PUT", self.db, self._path, body={"from": start})

    async def lease(
        self, worker: str, *, lease_ms: int = DEFAULT_LEASE_MS, max_messages: int = 1, wait_ms: int = 0
    ) -> list[QueueMessage]:
        """Up to `max_messages` due messages, leased to `worker` for `lease_ms`; waits up to
        `wait_ms` for one to become due (long-poll), else returns []. Each lease is an attempt."""
        wait = max(0, min(wait_ms, MAX_WAIT_MS))
        body = {"worker": worker, "leaseMs": lease_ms, "max": max_messages, "waitMs": wait}
        # A lease is not idempotent (it counts an attempt), but a repeated one only leases what
        # is due: a lost answer costs its messages one attempt and a lease expiry, never a loss.
        answer = await self._post("lease", body, read_timeout=wait / 1000 + self._connection.api.read_timeout)
        return [QueueMessage.from_wire(m, self.group) for m in answer.get("messages") or ()]

    async def ack(self, token: Token, atomic: AtomicBuilder | None = None) -> CommitResult:
        """Done with the message; `atomic`'s checks and mutations commit in the same record."""
        body: dict[str, Any] = {"token": token}
        if atomic is not None:
            body["atomic"] = atomic.to_wire()
        path = f"{self._path}/ack"
        status, answer = await self._connection.call("POST", self.db, path, body=body, check_may_fail=True)
        if status == 409:  # a check of the atomic failed (a stale token raises Fenced)
            return CommitResult(ok=False)
        return CommitResult.from_wire(answer)

    async def nack(self, token: Token, error: str, *, delay_ms: int | None = None) -> None:
        """Failed: retried after the message's backoff (or `delay_ms`), dead-lettered after its last attempt."""
        body: dict[str, Any] = {"token": token, "error": error}
        if delay_ms is not None:
            body["delayMs"] = delay_ms
        await self._post("nack", body)

    async def extend(self, token: Token, lease_ms: int = DEFAULT_LEASE_MS) -> None:
        """Keep the lease for `lease_ms` from now."""
        await self._post("extend", {"token": token, "leaseMs": lease_ms})

    async def term(self, token: Token, error: str) -> None:
        """Straight to the dead-letter queue, whatever attempts remain."""
        await self._post("term", {"token": token, "error": error})

    async def dlq(self, *, limit: int = 100) -> AsyncIterator[DeadLetter]:
        """Every dead letter of the group, oldest first, paging automatically."""
        after: str | None = None
        while True:
            params = {"limit": str(limit)}
            if after is not None:
                params["after"] = after
            _, answer = await self._connection.call("GET", self.db, f"{self._path}/dlq", params=params)
            for entry in answer.get("entries") or ():
                yield DeadLetter.from_wire(entry)
            after = answer.get("next")
            if after is None:
                return

    async def redrive(self, ids: Iterable[str] | None = None) -> int:
        """Move dead letters (`ids`, or all) back to the queue; returns how many moved."""
        body = {} if ids is None else {"ids": list(ids)}
        answer = await self._post("dlq/redrive", body, idempotent=False)
        return int(answer.get("redriven", 0))

    async def reset(self, start: str = "-1") -> None:
        """Replay the group from message id `start` ("-1": every retained message); fences its leases."""
        await self._post("reset", {"from": start}, idempotent=False)

    async def stats(self) -> GroupStats:
        """This group's depth, in-flight, redeliveries, dead letters and oldest message age."""
        groups = await queue_stats(self._connection, self.db)
        if self.group not in groups:
            return GroupStats(0, 0, 0, 0, None)
        return groups[self.group]


async def queue_stats(connection: KvConnection, db: str) -> dict[str, GroupStats]:
    """Every consumer group of `db`'s queue and its figures."""
    _, answer = await connection.call("GET", db, "/queue/stats")
    return {name: GroupStats.from_wire(figures) for name, figures in (answer.get("groups") or {}).items()}
