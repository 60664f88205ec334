"""The materialised KV index: the state that the database's change stream of commit records implies.

The commit path (origin/kv/database.py) is:

    1. `commit_from_wire` validates the request (shared/kv/commits.py);
    2. `index.check(commit, now_ms)` decides its checks against the current state, and dry-runs
       its sum/min/max so a type error is a 400 before anything is written;
    3. `index.plan(commit, now_ms)` computes its effects (the final entry of each key it
       touches), which are appended to the change stream as ONE event (origin/kv/events.py);
       the offset after it gives the versionstamp (`Versionstamp.from_offset`);
    4. `index.install(effects, versionstamp, at_ms)` installs them, live and on replay alike.

`apply(record, versionstamp)` is steps 3 and 4 for a binary commit record (shared/kv/records.py).
The log holds effects, not requests, so a replay reads nothing but the log: replay equals live.

Semantics (Deno KV's, with the deviations named):
- versionstamps rise strictly; all of a commit's mutations share its versionstamp; `apply`
  refuses a versionstamp not above the last one (a replayed or out-of-order record);
- mutations apply in order within a commit (set then sum on one key works); the commit is all or
  nothing: every change is computed first and installed only if none failed;
- sum wraps mod 2^64, min and max compare; on an absent key each stores its operand; on a
  value that is not a KvU64 each is a 400 (Deno throws; no mutation of the commit happens);
  their result never expires (they carry no expiry, so an earlier `expire_in` is dropped);
- `expire_in` makes an entry expire at commit time + expire_in. EXPIRY IS DECIDED BY TIME THAT
  IS IN THE LOG: a mutation sees an entry as absent if it had expired at its commit's time, and
  the index's clock is the time of the last applied commit. Reads take the caller's clock
  (never earlier than the index's), and an expired entry reads as absent. Expired entries stay
  stored until a commit deletes them: `expired_keys` lists the due ones so the origin can commit
  their deletes, which then reach watchers as ordinary change events (Deno deletes them silently
  in the background, so its watchers never learn of it);
- `enqueue` mutations do not touch keys; `apply` returns them (with the commit's versionstamp
  and their index in the commit) for the queue layer, in commit order;
- `list` follows Deno: a prefix excludes the prefix key itself; `start`/`end` narrow a prefix
  or stand alone (start inclusive, end exclusive); limit 1..1000 per page; `reverse`; the opaque
  cursor is the last key returned, so a resumed list continues right after it even when keys
  were written or deleted between pages.
"""

from __future__ import annotations

import base64
import builtins
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.kv.sorted_keys import SortedKeys
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.commits import AtomicCommit, DeleteMutation, Enqueue, Mutation, SetMutation, U64Mutation
from plugin_streams.shared.kv.keys import Key, bytes_from_base64url, decode_key, prefix_range
from plugin_streams.shared.kv.records import CommitRecord
from plugin_streams.shared.kv.values import KvValue, decode_value, stored_u64, u64_of
from plugin_streams.shared.kv.versionstamps import Versionstamp

MAX_GET_MANY: Final = 10
MAX_LIST_LIMIT: Final = 1000
_U64_MASK: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Entry:
    key: bytes  # encoded
    value: bytes  # stored form
    versionstamp: Versionstamp
    expires_at_ms: int | None = None

    def visible_at(self, now_ms: int) -> bool:
        return self.expires_at_ms is None or now_ms < self.expires_at_ms

    @property
    def key_parts(self) -> Key:
        return decode_key(self.key)

    @property
    def decoded_value(self) -> KvValue:
        return decode_value(self.value)


@dataclass(frozen=True, slots=True)
class QueuedEnqueue:
    """An `enqueue` of an applied commit, handed to the queue layer."""

    versionstamp: Versionstamp
    index_in_commit: int
    committed_at_ms: int
    enqueue: Enqueue


@dataclass(frozen=True, slots=True)
class Applied:
    versionstamp: Versionstamp
    changes: tuple[tuple[bytes, Entry | None], ...]  # final state of each key the commit touched
    enqueued: tuple[QueuedEnqueue, ...]


@dataclass(frozen=True, slots=True)
class ListSelector:
    """What to list: `prefix` (encoded) and/or `start`/`end` (encoded, start inclusive, end exclusive)."""

    prefix: bytes | None = None
    start: bytes | None = None
    end: bytes | None = None

    def bounds(self) -> tuple[bytes, bytes]:
        """[low, high) in encoded keys; a 400 for selectors Deno refuses too."""
        if self.prefix is None and (self.start is None or self.end is None):
            raise BadRequest("list needs a prefix, or both start and end")
        low, high = prefix_range(self.prefix) if self.prefix is not None else (b"", b"\xff")
        if self.start is not None:
            if self.prefix is not None and not low <= self.start < high:
                raise BadRequest("list start key is not under the prefix")
            low = self.start
        if self.end is not None:
            if self.prefix is not None and not low <= self.end <= high:
                raise BadRequest("list end key is not under the prefix")
            high = self.end
        if low > high:
            raise BadRequest("list start key is after the end key")
        return low, high


@dataclass(frozen=True, slots=True)
class ListPage:
    entries: tuple[Entry, ...]
    cursor: str | None  # None when the listing is complete


class KvIndex:
    """All live entries of one database, by encoded key, as of `last_versionstamp`."""

    def __init__(self) -> None:
        self._entries: dict[bytes, Entry] = {}
        self._keys = SortedKeys()
        self._expiries: list[tuple[int, bytes]] = []  # heap; stale items are skipped lazily
        self.last_versionstamp: Versionstamp | None = None
        self.clock_ms = 0

    @classmethod
    def restore(cls, entries: Sequence[Entry], last_versionstamp: Versionstamp | None, clock_ms: int) -> KvIndex:
        """An index holding `entries` (sorted by key, distinct), as a snapshot recorded it."""
        index = cls()
        index._entries = {entry.key: entry for entry in entries}
        index._keys = SortedKeys([entry.key for entry in entries])
        index._expiries = [(e.expires_at_ms, e.key) for e in entries if e.expires_at_ms is not None]
        heapq.heapify(index._expiries)
        index.last_versionstamp = last_versionstamp
        index.clock_ms = clock_ms
        return index

    def __len__(self) -> int:
        """Stored entries, including expired ones not yet deleted by a commit."""
        return len(self._entries)

    def entries(self) -> list[Entry]:
        """Every stored entry in key order (for snapshots)."""
        return [self._entries[key] for key in self._keys.irange(b"", b"\xff")]

    # ---- reads ---------------------------------------------------------------------------------

    def _now(self, now_ms: int | None) -> int:
        return self.clock_ms if now_ms is None else max(now_ms, self.clock_ms)

    def get(self, key: bytes, now_ms: int | None = None) -> Entry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.visible_at(self._now(now_ms)) else None

    def get_many(self, keys: Sequence[bytes], now_ms: int | None = None) -> list[Entry | None]:
        if len(keys) > MAX_GET_MANY:
            raise BadRequest(f"get_many takes at most {MAX_GET_MANY} keys, got {len(keys)}")
        return [self.get(key, now_ms) for key in keys]

    def list(
        self,
        selector: ListSelector,
        *,
        limit: int = 100,
        reverse: bool = False,
        cursor: str | None = None,
        now_ms: int | None = None,
    ) -> ListPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise BadRequest(f"list limit must be an integer in [1, {MAX_LIST_LIMIT}]")
        low, high = selector.bounds()
        if cursor is not None:
            after = _cursor_key(cursor, low, high)
            low, high = (low, after) if reverse else (after + b"\x00", high)
        now = self._now(now_ms)
        page: list[Entry] = []
        for key in self._keys.irange(low, high, reverse=reverse):
            entry = self._entries[key]
            if not entry.visible_at(now):
                continue
            if len(page) == limit:
                return ListPage(tuple(page), encode_cursor(page[-1].key))
            page.append(entry)
        return ListPage(tuple(page), None)

    def expired_keys(self, now_ms: int, limit: int) -> builtins.list[bytes]:
        """Up to `limit` stored keys whose expiry has passed by `now_ms`, earliest first."""
        due: dict[bytes, int] = {}
        while self._expiries and len(due) < limit and self._expiries[0][0] <= now_ms:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at_ms == expires_at:
                due[key] = expires_at  # a key set twice with one expiry has two heap items: keep one
        for key, expires_at in due.items():  # still stored: they stay due until a commit deletes them
            heapq.heappush(self._expiries, (expires_at, key))
        return builtins.list(due)

    # ---- writes --------------------------------------------------------------------------------

    def check(self, commit: AtomicCommit, now_ms: int) -> bool:
        """Whether `commit`'s checks hold at `now_ms`; a 400 if a mutation would fail on a value's type."""
        now = self._now(now_ms)
        for check in commit.checks:
            entry = self.get(check.key, now)
            if (entry.versionstamp if entry is not None else None) != check.versionstamp:
                return False
        self._plan(commit.mutations, now, Versionstamp(0))
        return True

    def apply(self, record: CommitRecord, versionstamp: Versionstamp) -> Applied:
        """Install a checked commit record; all or nothing."""
        now = max(record.committed_at_ms, self.clock_ms)
        staged = self._plan(record.mutations, now, versionstamp)
        self.install(
            (
                (key, entry.value if entry else None, entry.expires_at_ms if entry else None)
                for key, entry in staged.items()
            ),
            versionstamp,
            record.committed_at_ms,
        )
        enqueued = tuple(
            QueuedEnqueue(versionstamp, i, record.committed_at_ms, mutation)
            for i, mutation in enumerate(record.mutations)
            if isinstance(mutation, Enqueue)
        )
        return Applied(versionstamp, tuple((key, self._entries.get(key)) for key in staged), enqueued)

    def plan(self, commit: AtomicCommit, now_ms: int) -> dict[bytes, Entry | None]:
        """The final entry of each key a (checked) commit touches at `now_ms`; the index is unchanged.

        The entries carry a placeholder versionstamp: the commit's is known once it is logged."""
        return self._plan(commit.mutations, self._now(now_ms), Versionstamp(0))

    def install(
        self, effects: Iterable[tuple[bytes, bytes | None, int | None]], versionstamp: Versionstamp, at_ms: int
    ) -> None:
        """Install logged effects (key, stored value or None for a delete, expiry): all of them, in order."""
        if self.last_versionstamp is not None and versionstamp <= self.last_versionstamp:
            raise ValueError(f"versionstamp {versionstamp} is not above the last applied {self.last_versionstamp}")
        for key, value, expires_at_ms in effects:
            self._install(key, None if value is None else Entry(key, value, versionstamp, expires_at_ms))
        self.last_versionstamp = versionstamp
        self.clock_ms = max(at_ms, self.clock_ms)

    def _plan(self, mutations: Sequence[Mutation], now: int, versionstamp: Versionstamp) -> dict[bytes, Entry | None]:
        """The final entry of every key the mutations touch, computed without changing the index."""
        staged: dict[bytes, Entry | None] = {}
        for mutation in mutations:
            if isinstance(mutation, Enqueue):
                continue
            if isinstance(mutation, DeleteMutation):
                staged[mutation.key] = None
            elif isinstance(mutation, SetMutation):
                expires = None if mutation.expire_in_ms is None else now + mutation.expire_in_ms
                staged[mutation.key] = Entry(mutation.key, mutation.value, versionstamp, expires)
            else:
                current = staged[mutation.key] if mutation.key in staged else self.get(mutation.key, now)
                staged[mutation.key] = Entry(mutation.key, _u64_result(mutation, current), versionstamp)
        return staged

    def _install(self, key: bytes, entry: Entry | None) -> None:
        stored = key in self._entries
        if entry is None:
            if stored:
                del self._entries[key]
                self._keys.remove(key)
            return
        if not stored:
            self._keys.add(key)
        self._entries[key] = entry
        if entry.expires_at_ms is not None:
            heapq.heappush(self._expiries, (entry.expires_at_ms, key))


def _u64_result(mutation: U64Mutation, current: Entry | None) -> bytes:
    if current is None:
        return stored_u64(mutation.operand)
    value = u64_of(current.value)
    if value is None:
        raise BadRequest(f"cannot {mutation.op} a KvU64 into a key whose value is not a KvU64")
    if mutation.op == "sum":
        return stored_u64((value + mutation.operand) & _U64_MASK)
    pick = min if mutation.op == "min" else max
    return stored_u64(pick(value, mutation.operand))


def encode_cursor(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def _cursor_key(cursor: str, low: bytes, high: bytes) -> bytes:
    key = bytes_from_base64url(cursor, what="list cursor")
    decode_key(key)  # a 400 if the cursor is not a key at all
    if not low <= key < high:
        raise BadRequest("list cursor does not belong to this listing")
    return key
