"""What the KV store and its queue hand back: entries, commit results, changes, queue messages.

Every write answers with the `offset` of the change stream just after its commit (the same
point as its `versionstamp`), and every read with the offset it reflects: watching from such an
offset continues exactly after it (see `Kv.watch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from plugin_streams._kv_wire import Key, KvValue, key_from_wire, value_from_wire

#: A lease's fencing token, as the server gave it.
Token = int | str


@dataclass(frozen=True, slots=True)
class KvEntry:
    """A key, its value and versionstamp; `value` and `versionstamp` are None when the key has none.

    `offset`: the change-stream position the read reflects (for `list`, its page's): a watch
    from it continues with the first commit this read did not see.
    """

    key: Key
    value: KvValue
    versionstamp: str | None
    offset: str | None = None

    @classmethod
    def from_wire(cls, wire: dict[str, Any], offset: str | None = None) -> KvEntry:
        return cls(key_from_wire(wire["key"]), value_from_wire(wire.get("value")), wire.get("versionstamp"), offset)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The outcome of a commit. `ok` False: a check failed and nothing was written (as in Deno);
    then `versionstamp` and `offset` are None. `enqueued`: ids of the messages it enqueued."""

    ok: bool
    versionstamp: str | None = None
    offset: str | None = None
    enqueued: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> CommitResult:
        return cls(
            ok=wire.get("ok") is True,
            versionstamp=wire.get("versionstamp"),
            offset=wire.get("offset"),
            enqueued=tuple(wire.get("enqueued") or ()),
        )


@dataclass(frozen=True, slots=True)
class KvChange:
    """One committed change to one key, as a watch delivers it.

    `offset`: the change stream offset just after the change's commit (watching from it
    continues after that whole commit). `last`: this is the last change of its commit that the
    watch delivers, so once it is processed the commit is done and `offset` is the exact point
    to resume from (save it with the effect, see the README). `cause` is "expired" for a
    delete the server's expiry sweep made. `at`: the commit time (ms since the epoch).
    """

    key: Key
    op: Literal["set", "delete"]
    value: KvValue
    versionstamp: str
    offset: str
    last: bool
    at: int | None = None
    expire_at: int | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """A leased message. `token` fences the lease: only it acks, nacks, extends or terms it, and
    only while the lease lasts (it is opaque: sent back exactly as the server gave it).
    `attempt` counts from 1 (attempts are counted at lease)."""

    id: str
    value: KvValue
    attempt: int
    max_attempts: int
    token: Token
    lease_expires_at: int
    enqueued_at: int
    group: str

    @classmethod
    def from_wire(cls, wire: dict[str, Any], group: str) -> QueueMessage:
        return cls(
            id=str(wire["id"]),
            value=value_from_wire(wire.get("value")),
            attempt=int(wire.get("attempt", 0)),
            max_attempts=int(wire.get("maxAttempts", 0)),
            token=wire["token"],
            lease_expires_at=int(wire.get("leaseExpiresAt", 0)),
            enqueued_at=int(wire.get("enqueuedAt", 0)),
            group=group,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in a group's dead-letter queue, with the change stream offset that enqueued it."""

    id: str
    offset: str
    attempts: int
    reason: str
    last_error: str | None
    dead_at: int
    value: KvValue

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> DeadLetter:
        return cls(
            id=str(wire["id"]),
            offset=str(wire.get("offset", "")),
            attempts=int(wire.get("attempts", 0)),
            reason=str(wire.get("reason", "")),
            last_error=wire.get("lastError"),
            dead_at=int(wire.get("deadAt", 0)),
            value=value_from_wire(wire.get("value")),
        )


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One consumer group: messages waiting, leased, redelivered so far, dead, and the oldest's age."""

    depth: int
    in_flight: int
    redeliveries: int
    dlq: int
    oldest_age_ms: int | None

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> GroupStats:
        oldest = wire.get("oldestAgeMs")
        return cls(
            depth=int(wire.get("depth", 0)),
            in_flight=int(wire.get("inFlight", 0)),
            redeliveries=int(wire.get("redeliveries", 0)),
            dlq=int(wire.get("dlq", 0)),
            oldest_age_ms=None if oldest is None else int(oldest),
        )
