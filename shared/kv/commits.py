"""Atomic commits: Deno's `atomic()`: up to 10 checks, then up to 1,000 mutations, all or nothing.

A commit is validated here, before it reaches any state: every key, value and option is parsed
and every Deno limit enforced, so whatever passes can only fail later on its checks (a `false`
answer, not an error) or on a sum/min/max over a non-KvU64 value (a 400 the index raises before
changing anything).

Limits (Deno's, from denokv_proto limits.rs and the Deno docs; each rejection names its limit):
- at most 10 checks and 1,000 mutations (enqueues count as mutations, as in Deno);
- keys of at least one part and at most 2,048 bytes encoded, values at most 64 KiB;
- the whole commit at most 800 KiB, counting every key (checks, mutations, keys_if_undelivered)
  and every value;
- enqueue: `delay` 0..30 days, at most 10 `keys_if_undelivered`, a `backoff_schedule` of at most
  10 intervals of 0..1 hour each (None = Deno's default, decided by the queue).

Wire form (the JSON body of the future `POST .../atomic`, shaped like plugin-keyval's `/atomic`,
with Deno's option names):

    {"checks": [{"key": [...], "versionstamp": "<20 hex>" | null}],
     "mutations": [{"type": "set", "key": [...], "value": <value wire form>, "expireIn": <ms>?},
                   {"type": "delete", "key": [...]},
                   {"type": "sum" | "min" | "max", "key": [...], "value": {"$u64": "5"} | 5},
                   {"type": "enqueue", "value": <value>, "delay": <ms>?,
                    "keysIfUndelivered": [[...]]?, "backoffSchedule": [<ms>, ...]?}]}

Unknown fields are refused (a misspelt `expire_in` silently ignored would keep data forever).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from plugin_streams.shared.errors import BadRequest, PayloadTooLarge
from plugin_streams.shared.kv.keys import encode_key, key_from_wire
from plugin_streams.shared.kv.values import Json, encode_value, u64_from_wire, value_from_wire, value_size
from plugin_streams.shared.kv.versionstamps import Versionstamp, parse_versionstamp

MAX_CHECKS: Final = 10
MAX_MUTATIONS: Final = 1000
MAX_COMMIT_BYTES: Final = 800 * 1024
MAX_DELAY_MS: Final = 30 * 24 * 3600 * 1000
MAX_KEYS_IF_UNDELIVERED: Final = 10
MAX_BACKOFF_INTERVALS: Final = 10
MAX_BACKOFF_MS: Final = 3600 * 1000
#: Far beyond any useful expiry, and small enough that commit time + expiry stays exact everywhere.
MAX_EXPIRE_IN_MS: Final = 2**53 - 1

U64Op = Literal["sum", "min", "max"]
U64_OPS: Final[frozenset[str]] = frozenset({"sum", "min", "max"})


@dataclass(frozen=True, slots=True)
class Check:
    """The entry at `key` must currently have `versionstamp` (None: must not exist)."""

    key: bytes
    versionstamp: Versionstamp | None


@dataclass(frozen=True, slots=True)
class SetMutation:
    key: bytes
    value: bytes  # stored form (shared.kv.values)
    expire_in_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteMutation:
    key: bytes


@dataclass(frozen=True, slots=True)
class U64Mutation:
    """sum (wrapping mod 2^64), min or max of the stored KvU64 and `operand`; an absent key takes `operand`."""

    op: U64Op
    key: bytes
    operand: int


@dataclass(frozen=True, slots=True)
class Enqueue:
    value: bytes  # stored form
    delay_ms: int = 0
    keys_if_undelivered: tuple[bytes, ...] = ()
    backoff_schedule: tuple[int, ...] | None = None


Mutation = SetMutation | DeleteMutation | U64Mutation | Enqueue


@dataclass(frozen=True, slots=True)
class AtomicCommit:
    checks: tuple[Check, ...]
    mutations: tuple[Mutation, ...]


def validate_commit(commit: AtomicCommit) -> AtomicCommit:
    """Enforce the counts, sizes and option ranges on a commit built in code; returns it unchanged."""
    if len(commit.checks) > MAX_CHECKS:
        raise BadRequest(f"commit has {len(commit.checks)} checks, over the limit of {MAX_CHECKS}")
    if len(commit.mutations) > MAX_MUTATIONS:
        raise BadRequest(f"commit has {len(commit.mutations)} mutations, over the limit of {MAX_MUTATIONS}")
    for check in commit.checks:
        _non_empty(check.key)
    for mutation in commit.mutations:
        _validate_mutation(mutation)
    size = commit_size(commit)
    if size > MAX_COMMIT_BYTES:
        raise PayloadTooLarge(f"commit is {size} bytes of keys and values, over the limit of {MAX_COMMIT_BYTES}")
    return commit


def _non_empty(key: bytes) -> None:
    if not key:
        raise BadRequest("a key must have at least one part (Deno refuses the empty key too)")


def _validate_mutation(mutation: Mutation) -> None:
    if not isinstance(mutation, Enqueue):
        _non_empty(mutation.key)
    if isinstance(mutation, SetMutation) and mutation.expire_in_ms is not None:
        _in_range("expireIn", mutation.expire_in_ms, 1, MAX_EXPIRE_IN_MS)
    elif isinstance(mutation, U64Mutation):
        _in_range(f"{mutation.op} operand", mutation.operand, 0, 2**64 - 1)
    elif isinstance(mutation, Enqueue):
        _in_range("delay", mutation.delay_ms, 0, MAX_DELAY_MS)
        for key in mutation.keys_if_undelivered:
            _non_empty(key)
        if len(mutation.keys_if_undelivered) > MAX_KEYS_IF_UNDELIVERED:
            raise BadRequest(f"keysIfUndelivered has over {MAX_KEYS_IF_UNDELIVERED} keys")
        schedule = mutation.backoff_schedule or ()
        if len(schedule) > MAX_BACKOFF_INTERVALS:
            raise BadRequest(f"backoffSchedule has over {MAX_BACKOFF_INTERVALS} intervals")
        for interval in schedule:
            _in_range("backoffSchedule interval", interval, 0, MAX_BACKOFF_MS)


def _in_range(what: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{what} must be an integer in [{low}, {high}], got {str(value)[:40]}")


def commit_size(commit: AtomicCommit) -> int:
    """Bytes counted against the 800 KiB commit limit: every key and every value payload."""
    size = sum(len(check.key) for check in commit.checks)
    for mutation in commit.mutations:
        if isinstance(mutation, Enqueue):
            size += value_size(mutation.value) + sum(len(key) for key in mutation.keys_if_undelivered)
        elif isinstance(mutation, SetMutation):
            size += len(mutation.key) + value_size(mutation.value)
        else:
            size += len(mutation.key) + (8 if isinstance(mutation, U64Mutation) else 0)
    return size


# ---- JSON wire form ----------------------------------------------------------------------------

_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "set": frozenset({"type", "key", "value", "expireIn"}),
    "delete": frozenset({"type", "key"}),
    "sum": frozenset({"type", "key", "value"}),
    "min": frozenset({"type", "key", "value"}),
    "max": frozenset({"type", "key", "value"}),
    "enqueue": frozenset({"type", "value", "delay", "keysIfUndelivered", "backoffSchedule"}),
}


def commit_from_wire(wire: Json) -> AtomicCommit:
    """Parse and validate a commit body; a 400/413 names the first thing wrong with it."""
    if not isinstance(wire, dict) or not set(wire) <= {"checks", "mutations"}:
        raise BadRequest("a commit must be a JSON object with only 'checks' and 'mutations'")
    checks = _list_field(wire, "checks", MAX_CHECKS)
    mutations = _list_field(wire, "mutations", MAX_MUTATIONS)
    commit = AtomicCommit(
        checks=tuple(_check_from_wire(item, i) for i, item in enumerate(checks)),
        mutations=tuple(_mutation_from_wire(item, i) for i, item in enumerate(mutations)),
    )
    return validate_commit(commit)


def _list_field(wire: Mapping[str, Json], name: str, limit: int) -> Sequence[Json]:
    items = wire.get(name, [])
    if not isinstance(items, list):
        raise BadRequest(f"commit '{name}' must be an array")
    if len(items) > limit:
        raise BadRequest(f"commit has {len(items)} {name}, over the limit of {limit}")
    return items


def _check_from_wire(wire: Json, index: int) -> Check:
    if not isinstance(wire, dict) or set(wire) != {"key", "versionstamp"}:
        raise BadRequest(f"check {index} must be an object with exactly 'key' and 'versionstamp'")
    stamp = wire["versionstamp"]
    return Check(
        key=encode_key(key_from_wire(wire["key"])),
        versionstamp=None if stamp is None else parse_versionstamp(stamp),
    )


def _mutation_from_wire(wire: Json, index: int) -> Mutation:
    if not isinstance(wire, dict):
        raise BadRequest(f"mutation {index} must be an object")
    kind = wire.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise BadRequest(f"mutation {index} has unknown type {str(kind)[:40]!r} (expected one of {sorted(_FIELDS)})")
    unknown = set(wire) - _FIELDS[kind]
    if unknown:
        raise BadRequest(f"mutation {index} ({kind}) has unknown fields {sorted(unknown)[:5]}")
    if kind == "enqueue":
        return _enqueue_from_wire(wire)
    key = encode_key(key_from_wire(wire.get("key")))
    if kind == "delete":
        return DeleteMutation(key)
    if "value" not in wire:
        raise BadRequest(f"mutation {index} ({kind}) needs a 'value'")
    if kind == "set":
        expire_in = wire.get("expireIn")
        return SetMutation(key, encode_value(value_from_wire(wire["value"])), _optional_int("expireIn", expire_in))
    operand = wire["value"]
    if isinstance(operand, dict) and set(operand) == {"$u64"}:
        operand = operand["$u64"]
    op: U64Op = "sum" if kind == "sum" else "min" if kind == "min" else "max"
    return U64Mutation(op, key, u64_from_wire(operand, what=f"{kind} operand").value)


def _enqueue_from_wire(wire: Mapping[str, Json]) -> Enqueue:
    if "value" not in wire:
        raise BadRequest("enqueue needs a 'value'")
    undelivered = wire.get("keysIfUndelivered", [])
    if not isinstance(undelivered, list):
        raise BadRequest("enqueue keysIfUndelivered must be an array of keys")
    if len(undelivered) > MAX_KEYS_IF_UNDELIVERED:
        raise BadRequest(f"keysIfUndelivered has over {MAX_KEYS_IF_UNDELIVERED} keys")
    schedule = wire.get("backoffSchedule")
    if schedule is not None and not isinstance(schedule, list):
        raise BadRequest("enqueue backoffSchedule must be an array of milliseconds")
    return Enqueue(
        value=encode_value(value_from_wire(wire["value"])),
        delay_ms=_optional_int("delay", wire.get("delay")) or 0,
        keys_if_undelivered=tuple(encode_key(key_from_wire(key)) for key in undelivered),
        backoff_schedule=None if schedule is None else tuple(_int("backoffSchedule interval", x) for x in schedule),
    )


def _optional_int(what: str, wire: Json) -> int | None:
    return None if wire is None else _int(what, wire)


def _int(what: str, wire: Json) -> int:
    if isinstance(wire, float) and wire.is_integer():
        return int(wire)
    if isinstance(wire, bool) or not isinstance(wire, int):
        raise BadRequest(f"{what} must be an integer number of milliseconds")
    return wire
