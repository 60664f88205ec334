"""`kv.atomic()`: checks and mutations committed all or nothing, as Deno's `AtomicOperation`.

    result = await (
        kv.atomic()
        .check(("users", "alice"), entry.versionstamp)   # None: the key must not exist
        .set(("users", "alice"), {"visits": 2})
        .sum(("stats", "visits"), 1)                      # a KvU64 counter
        .enqueue({"welcome": "alice"}, delay=1000)
        .commit()
    )
    if not result.ok: ...                                 # a check failed; nothing was written

Durations are milliseconds, as in Deno (`expire_in_ms`, and `delay` and `backoff_schedule` as Deno names them).
The server enforces Deno's limits (10 checks, 1,000 mutations, key 2,048 B, value 64 KiB,
commit 800 KiB) and answers a 4xx naming the one exceeded. A builder is also what a queue
handler returns to have its effect committed with the message's ack (see `Kv.listen_queue`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Self

from plugin_streams._kv_models import CommitResult
from plugin_streams._kv_wire import KeyPart, KvU64, KvValue, key_to_wire, operand_to_wire, value_to_wire

Committer = Callable[[dict[str, Any]], Awaitable[CommitResult]]


def _milliseconds(value: int | float | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{what} is a number of milliseconds >= 0, not {value!r}")
    return round(value)


def enqueue_wire(
    value: KvValue,
    delay: float | None,
    backoff_schedule: Iterable[float] | None,
    keys_if_undelivered: Iterable[Sequence[KeyPart]] | None,
) -> dict[str, Any]:
    """An enqueue's fields (the `enqueue` mutation's, and the body of the queue's enqueue call)."""
    wire: dict[str, Any] = {"value": value_to_wire(value)}
    delay = _milliseconds(delay, "delay")
    if delay is not None:
        wire["delay"] = delay
    if backoff_schedule is not None:
        wire["backoffSchedule"] = [_milliseconds(ms, "a backoff_schedule interval") for ms in backoff_schedule]
    if keys_if_undelivered is not None:
        wire["keysIfUndelivered"] = [key_to_wire(key) for key in keys_if_undelivered]
    return wire


class AtomicBuilder:
    """The checks and mutations of one commit (`AtomicOperation` and the sync client's commit them)."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.mutations: list[dict[str, Any]] = []

    def check(self, key: Sequence[KeyPart], versionstamp: str | None) -> Self:
        """Commit only if `key`'s versionstamp is `versionstamp` (None: only if it has no value)."""
        self.checks.append({"key": key_to_wire(key), "versionstamp": versionstamp})
        return self

    def set(self, key: Sequence[KeyPart], value: KvValue, *, expire_in_ms: float | None = None) -> Self:
        mutation: dict[str, Any] = {"type": "set", "key": key_to_wire(key), "value": value_to_wire(value)}
        expire_in = _milliseconds(expire_in_ms, "expire_in_ms")
        if expire_in is not None:
            mutation["expireIn"] = expire_in
        self.mutations.append(mutation)
        return self

    def delete(self, key: Sequence[KeyPart]) -> Self:
        self.mutations.append({"type": "delete", "key": key_to_wire(key)})
        return self

    def sum(self, key: Sequence[KeyPart], value: KvU64 | int) -> Self:
        """Add to `key`'s KvU64 (wrapping at 2^64, as in Deno); a missing key counts as 0."""
        return self._operand("sum", key, value)

    def min(self, key: Sequence[KeyPart], value: KvU64 | int) -> Self:
        return self._operand("min", key, value)

    def max(self, key: Sequence[KeyPart], value: KvU64 | int) -> Self:
        return self._operand("max", key, value)

    def _operand(self, kind: str, key: Sequence[KeyPart], value: KvU64 | int) -> Self:
        self.mutations.append({"type": kind, "key": key_to_wire(key), "value": operand_to_wire(value)})
        return self

    def enqueue(
        self,
        value: KvValue,
        *,
        delay: float | None = None,
        backoff_schedule: Iterable[float] | None = None,
        keys_if_undelivered: Iterable[Sequence[KeyPart]] | None = None,
    ) -> Self:
        """Enqueue `value` in the database's queue with this commit (see `Kv.enqueue`)."""
        wire = enqueue_wire(value, delay, backoff_schedule, keys_if_undelivered)
        self.mutations.append({"type": "enqueue", **wire})
        return self

    def to_wire(self) -> dict[str, Any]:
        return {"checks": list(self.checks), "mutations": list(self.mutations)}


class AtomicOperation(AtomicBuilder):
    def __init__(self, committer: Committer) -> None:
        super().__init__()
        self._committer = committer

    async def commit(self) -> CommitResult:
        """Commit; `ok` False (nothing written) when a check failed."""
        return await self._committer(self.to_wire())
