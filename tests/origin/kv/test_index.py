"""The KV index: Deno's semantics case by case, then random commit sequences against a dict model.

The model is written without the index's machinery: tuples ordered by the reference order of
tests/shared/kv/strategies.py, expiry as a visibility test, a commit as a copy-then-replace of a
dict. Each random run also rebuilds the index from its records (replay) and from a snapshot, and
both must answer exactly as the live one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin_streams.origin.kv.index import MAX_LIST_LIMIT, Entry, KvIndex, ListSelector, encode_cursor
from plugin_streams.origin.kv.snapshot import encode_snapshot, load_snapshot
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.kv.commits import (
    AtomicCommit,
    Check,
    DeleteMutation,
    Enqueue,
    Mutation,
    SetMutation,
    U64Mutation,
)
from plugin_streams.shared.kv.keys import Key, decode_key, encode_key
from plugin_streams.shared.kv.records import decode_record, encode_record
from plugin_streams.shared.kv.values import KvU64, encode_value, u64_of
from plugin_streams.shared.kv.versionstamps import Versionstamp
from plugin_streams.shared.offsets import Offset
from tests.shared.kv.strategies import reference_order, same_key


class Db:
    """An index driven as the origin will drive it: check, append a record, apply at its offset."""

    def __init__(self) -> None:
        self.index = KvIndex()
        self.records: list[tuple[bytes, Versionstamp]] = []
        self.position = 0

    def commit(self, commit: AtomicCommit, now_ms: int = 0) -> Versionstamp | None:
        if not self.index.check(commit, now_ms):
            return None
        record = encode_record(commit, now_ms)
        self.position += len(record)
        stamp = Versionstamp.from_offset(Offset(1, self.position))
        self.index.apply(decode_record(record), stamp)
        self.records.append((record, stamp))
        return stamp

    def replayed(self) -> KvIndex:
        index = KvIndex()
        for record, stamp in self.records:
            index.apply(decode_record(record), stamp)
        return index


def k(*parts: bytes | str | int | float | bool) -> bytes:
    return encode_key(parts)


def put(key: bytes, value: object, expire_in_ms: int | None = None) -> SetMutation:
    return SetMutation(key, encode_value(value), expire_in_ms)  # type: ignore[arg-type]


def value_at(db: Db, key: bytes, now_ms: int | None = None) -> object:
    entry = db.index.get(key, now_ms)
    return None if entry is None else entry.decoded_value


# ---- Deno semantics, case by case -----------------------------------------------------------------


def test_a_commit_shares_one_rising_versionstamp() -> None:
    db = Db()
    first = db.commit(AtomicCommit((), (put(k("a"), 1), put(k("b"), 2))))
    second = db.commit(AtomicCommit((), (put(k("a"), 3),)))
    assert first is not None and second is not None and first < second
    a, b = db.index.get(k("a")), db.index.get(k("b"))
    assert a is not None and b is not None
    assert (a.versionstamp, b.versionstamp) == (second, first)


def test_checks_compare_versionstamps_and_none_means_absent() -> None:
    db = Db()
    stamp = db.commit(AtomicCommit((Check(k("a"), None),), (put(k("a"), 1),)))
    assert stamp is not None
    assert db.commit(AtomicCommit((Check(k("a"), None),), (put(k("a"), 2),))) is None
    assert db.commit(AtomicCommit((Check(k("a"), Versionstamp(stamp.value + 1)),), (put(k("a"), 2),))) is None
    assert value_at(db, k("a")) == 1
    assert db.commit(AtomicCommit((Check(k("a"), stamp),), (put(k("a"), 2),))) is not None
    assert value_at(db, k("a")) == 2


def test_sum_wraps_and_min_max_compare_on_kvu64() -> None:
    db = Db()
    db.commit(AtomicCommit((), (U64Mutation("sum", k("n"), 2**64 - 1), U64Mutation("sum", k("n"), 2))))
    assert value_at(db, k("n")) == KvU64(1)
    db.commit(AtomicCommit((), (U64Mutation("max", k("n"), 10), U64Mutation("min", k("m"), 4))))
    assert (value_at(db, k("n")), value_at(db, k("m"))) == (KvU64(10), KvU64(4))
    db.commit(AtomicCommit((), (U64Mutation("min", k("n"), 3), U64Mutation("max", k("m"), 1))))
    assert (value_at(db, k("n")), value_at(db, k("m"))) == (KvU64(3), KvU64(4))


def test_a_u64_result_drops_an_earlier_expiry() -> None:
    db = Db()
    db.commit(AtomicCommit((), (put(k("n"), KvU64(1), expire_in_ms=10), U64Mutation("sum", k("n"), 1))), now_ms=0)
    entry = db.index.get(k("n"), 1000)
    assert entry is not None and entry.decoded_value == KvU64(2) and entry.expires_at_ms is None


def test_mutations_apply_in_order_within_a_commit() -> None:
    db = Db()
    db.commit(AtomicCommit((), (put(k("n"), KvU64(5)), U64Mutation("sum", k("n"), 1), DeleteMutation(k("x")))))
    assert value_at(db, k("n")) == KvU64(6)
    db.commit(AtomicCommit((), (DeleteMutation(k("n")), U64Mutation("sum", k("n"), 2))))
    assert value_at(db, k("n")) == KvU64(2)


def test_a_type_error_is_a_400_before_anything_changes() -> None:
    db = Db()
    db.commit(AtomicCommit((), (put(k("s"), "text"),)))
    before = db.index.entries()
    bad = AtomicCommit((), (put(k("a"), 1), U64Mutation("sum", k("s"), 1)))
    with pytest.raises(BadRequest, match="not a KvU64"):
        db.commit(bad)
    with pytest.raises(BadRequest):  # apply refuses it too, whole
        db.index.apply(decode_record(encode_record(bad, 0)), Versionstamp.from_offset(Offset(9, 9)))
    assert db.index.entries() == before
    # A failing check wins over the type error, as in Deno (the mutations are never attempted).
    assert db.commit(AtomicCommit((Check(k("s"), None),), bad.mutations)) is None


def test_expiry_is_decided_by_commit_time_and_reads_never_go_back() -> None:
    db = Db()
    db.commit(AtomicCommit((), (put(k("t"), "v", expire_in_ms=100),)), now_ms=1000)
    entry = db.index.get(k("t"))
    assert entry is not None and entry.expires_at_ms == 1100
    assert value_at(db, k("t"), 1099) == "v"
    assert value_at(db, k("t"), 1100) is None
    assert value_at(db, k("t"), 500) == "v"  # the index's clock is 1000: still visible
    assert db.index.expired_keys(1100, 10) == [k("t")]
    assert db.index.expired_keys(1099, 10) == []
    # A sum on a key expired at the commit's time starts from nothing; a check sees it absent.
    db.commit(AtomicCommit((Check(k("t"), None),), (U64Mutation("sum", k("t"), 7),)), now_ms=1200)
    assert value_at(db, k("t")) == KvU64(7)
    assert db.index.expired_keys(5000, 10) == []


def test_reads_are_never_earlier_than_the_last_commit() -> None:
    db = Db()
    db.commit(AtomicCommit((), (put(k("t"), "v", expire_in_ms=100),)), now_ms=1000)
    db.commit(AtomicCommit((), (put(k("other"), 1),)), now_ms=1200)
    assert value_at(db, k("t"), 1050) is None  # the log has reached 1200: "t" is gone for every reader
    assert db.index.clock_ms == 1200
    db.commit(AtomicCommit((), (put(k("late"), 1, expire_in_ms=100),)), now_ms=900)  # a clock behind the log's
    late = db.index.get(k("late"))
    assert late is not None and late.expires_at_ms == 1300 and db.index.clock_ms == 1200


def test_expired_keys_stay_due_until_a_commit_deletes_them() -> None:
    db = Db()
    db.commit(AtomicCommit((), tuple(put(k("e", i), i, expire_in_ms=10 + i) for i in range(5))), now_ms=0)
    db.commit(AtomicCommit((), (put(k("e", 0), "kept"),)), now_ms=1)  # no longer expires
    assert db.index.expired_keys(100, 2) == [k("e", 1), k("e", 2)]
    assert db.index.expired_keys(100, 10) == [k("e", 1), k("e", 2), k("e", 3), k("e", 4)]
    db.commit(AtomicCommit((), (DeleteMutation(k("e", 1)), DeleteMutation(k("e", 2)))), now_ms=100)
    assert db.index.expired_keys(100, 10) == [k("e", 3), k("e", 4)]
    assert len(db.index) == 3


def test_enqueues_are_handed_back_in_commit_order() -> None:
    db = Db()
    first = Enqueue(encode_value("a"), 5, (k("dead", 1),), (100,))
    second = Enqueue(encode_value("b"))
    record = encode_record(AtomicCommit((), (first, put(k("x"), 1), second)), 42)
    applied = db.index.apply(decode_record(record), Versionstamp(7))
    assert [(q.index_in_commit, q.enqueue, q.committed_at_ms) for q in applied.enqueued] == [
        (0, first, 42),
        (2, second, 42),
    ]
    assert all(q.versionstamp == Versionstamp(7) for q in applied.enqueued)
    assert [key for key, _ in applied.changes] == [k("x")]


def test_apply_refuses_a_versionstamp_that_does_not_rise() -> None:
    db = Db()
    record = decode_record(encode_record(AtomicCommit((), (put(k("a"), 1),)), 0))
    db.index.apply(record, Versionstamp(5))
    with pytest.raises(ValueError, match="not above"):
        db.index.apply(record, Versionstamp(5))


def _fill(db: Db) -> None:
    keys = [k("a"), k("a", 1), k("a", 2), k("a", 2, "x"), k("a", 3), k("ab"), k("b")]
    db.commit(AtomicCommit((), tuple(put(key, i) for i, key in enumerate(keys))))


def _all_pages(index: KvIndex, selector: ListSelector, limit: int, reverse: bool = False) -> list[Key]:
    out: list[Key] = []
    cursor = None
    for _ in range(len(index) + 2):  # every page but the last holds a key: more pages means no progress
        page = index.list(selector, limit=limit, reverse=reverse, cursor=cursor)
        assert len(page.entries) <= limit
        out += [decode_key(entry.key) for entry in page.entries]
        if page.cursor is None:
            return out
        cursor = page.cursor
    raise AssertionError("paging made no progress")


def test_list_by_prefix_excludes_the_prefix_itself_and_pages() -> None:
    db = Db()
    _fill(db)
    expected: list[Key] = [("a", 1), ("a", 2), ("a", 2, "x"), ("a", 3)]
    assert _all_pages(db.index, ListSelector(prefix=k("a")), limit=1) == expected
    assert _all_pages(db.index, ListSelector(prefix=k("a")), limit=3, reverse=True) == expected[::-1]
    assert _all_pages(db.index, ListSelector(prefix=k("a"), start=k("a", 2, "x")), limit=2) == expected[2:]
    assert _all_pages(db.index, ListSelector(prefix=k("a"), end=k("a", 2, "x")), limit=2) == expected[:2]
    assert _all_pages(db.index, ListSelector(start=k("a", 3), end=k("b")), limit=10) == [("a", 3), ("ab",)]
    assert db.index.list(ListSelector(prefix=k("a")), limit=4).cursor is None  # exactly full, nothing after


def test_a_cursor_resumes_right_after_its_key_across_commits() -> None:
    db = Db()
    _fill(db)
    page = db.index.list(ListSelector(prefix=k("a")), limit=2)
    assert page.cursor is not None
    db.commit(AtomicCommit((), (DeleteMutation(k("a", 2)), put(k("a", 1, "new"), 0), put(k("a", 2, "y"), 0))))
    rest = db.index.list(ListSelector(prefix=k("a")), limit=10, cursor=page.cursor)
    assert [decode_key(e.key) for e in rest.entries] == [("a", 2, "x"), ("a", 2, "y"), ("a", 3)]
    back = db.index.list(ListSelector(prefix=k("a")), limit=10, cursor=page.cursor, reverse=True)
    assert [decode_key(e.key) for e in back.entries] == [("a", 1, "new"), ("a", 1)]


@pytest.mark.parametrize(
    ("selector", "options", "needle"),
    [
        (ListSelector(), {}, "prefix"),
        (ListSelector(start=k("a")), {}, "prefix"),
        (ListSelector(prefix=k("a"), start=k("b")), {}, "not under the prefix"),
        (ListSelector(prefix=k("a"), end=k("a")), {}, "not under the prefix"),
        (ListSelector(start=k("b"), end=k("a")), {}, "after the end"),
        (ListSelector(prefix=k("a")), {"limit": 0}, "limit"),
        (ListSelector(prefix=k("a")), {"limit": MAX_LIST_LIMIT + 1}, "limit"),
        (ListSelector(prefix=k("a")), {"cursor": "!!"}, "cursor"),
        (ListSelector(prefix=k("a")), {"cursor": "AmIA"}, "does not belong"),  # ("b",): outside the prefix
        (ListSelector(prefix=k("a")), {"cursor": "Aw"}, "type code"),  # not a key at all
    ],
)
def test_bad_list_requests_are_400(selector: ListSelector, options: dict[str, object], needle: str) -> None:
    db = Db()
    _fill(db)
    with pytest.raises(BadRequest, match=needle):
        db.index.list(selector, **options)  # type: ignore[arg-type]


def test_get_many_answers_in_request_order_and_caps_at_10() -> None:
    db = Db()
    _fill(db)
    found = db.index.get_many([k("b"), k("zz"), k("a")])
    assert [None if e is None else e.decoded_value for e in found] == [6, None, 0]
    with pytest.raises(BadRequest, match="at most 10"):
        db.index.get_many([k("a")] * 11)


# ---- random commit sequences against a model ------------------------------------------------------

KEYS: list[Key] = [("a",), ("a", 1), ("a", 1, "x"), ("a", 2), ("a", b"\x00"), ("ab",), ("b",), ("b", 1.5), ("b", True)]
PREFIXES: list[Key] = [(), ("a",), ("a", 1), ("b",), ("c",)]
VALUES = [encode_value(5), encode_value("s"), encode_value(KvU64(3)), encode_value(KvU64(2**64 - 1))]
OPERANDS = [0, 1, 7, 2**64 - 1]


@dataclass
class Model:
    entries: dict[int, tuple[bytes, int, int | None]] = field(default_factory=dict)  # key index -> value, stamp, exp
    clock: int = 0

    def visible(self, now: int) -> dict[int, tuple[bytes, int, int | None]]:
        now = max(now, self.clock)
        return {i: e for i, e in self.entries.items() if e[2] is None or now < e[2]}


key_index = st.integers(0, len(KEYS) - 1)
mutation_specs = st.one_of(
    st.tuples(st.just("set"), key_index, st.sampled_from(VALUES), st.none() | st.integers(1, 30)),
    st.tuples(st.just("delete"), key_index, st.none(), st.none()),
    st.tuples(st.sampled_from(["sum", "min", "max"]), key_index, st.sampled_from(OPERANDS), st.none()),
    st.tuples(st.just("enqueue"), st.none(), st.sampled_from(VALUES), st.none()),
)
commit_steps = st.tuples(
    st.just("commit"),
    st.lists(st.tuples(key_index, st.sampled_from(["current", "absent", "wrong"])), max_size=3),
    st.lists(mutation_specs, min_size=1, max_size=5),
    st.integers(0, 25),
)
list_steps = st.tuples(
    st.just("list"),
    st.sampled_from(["prefix", "prefix+start", "prefix+end", "start+end"]),
    st.tuples(st.integers(0, len(PREFIXES) - 1), key_index, key_index),
    st.tuples(st.booleans(), st.integers(1, 4)),
)
other_steps = st.tuples(
    st.sampled_from(["get", "reload", "read_later"]), st.lists(key_index, max_size=4), st.integers(0, 40), st.none()
)
steps = st.lists(st.one_of(commit_steps, commit_steps, list_steps, other_steps), max_size=40)


def _mutation(spec: tuple[str, int | None, object, int | None]) -> Mutation:
    kind, i, payload, expire = spec
    if kind == "enqueue":
        assert isinstance(payload, bytes)
        return Enqueue(payload)
    assert i is not None
    key = encode_key(KEYS[i])
    if kind == "set":
        assert isinstance(payload, bytes)
        return SetMutation(key, payload, expire)
    if kind == "delete":
        return DeleteMutation(key)
    assert isinstance(payload, int)
    return U64Mutation("sum" if kind == "sum" else "min" if kind == "min" else "max", key, payload)


def _model_commit(
    model: Model,
    checks: list[tuple[int, str]],
    specs: list[tuple[str, int | None, object, int | None]],
    now: int,
    stamp: int,
) -> str:
    now = max(now, model.clock)
    live = model.visible(now)
    for i, mode in checks:
        if mode == "current" or (mode == "absent" and i not in live):
            continue
        return "failed"  # "wrong" names a versionstamp never minted
    new = dict(live)
    for kind, i, payload, expire in specs:
        if kind == "enqueue":
            continue
        assert i is not None
        if kind == "delete":
            new.pop(i, None)
        elif kind == "set":
            assert isinstance(payload, bytes)
            new[i] = (payload, stamp, None if expire is None else now + expire)
        else:
            assert isinstance(payload, int)
            old = new.get(i)
            current = None if old is None else u64_of(old[0])
            if old is not None and current is None:
                return "type_error"
            result = (
                payload
                if current is None
                else (current + payload) % 2**64
                if kind == "sum"
                else (min if kind == "min" else max)(current, payload)
            )
            new[i] = (encode_value(KvU64(result)), stamp, None)
    model.entries, model.clock = new, now
    return "ok"


def _checks(model: Model, db: Db, checks: list[tuple[int, str]], now: int) -> tuple[Check, ...]:
    out = []
    for i, mode in checks:
        entry = model.visible(now).get(i)
        if mode == "current":
            out.append(Check(encode_key(KEYS[i]), None if entry is None else Versionstamp(entry[1])))
        elif mode == "absent":
            out.append(Check(encode_key(KEYS[i]), None))
        else:
            out.append(Check(encode_key(KEYS[i]), Versionstamp(1)))  # never minted: offsets start past 0
    return tuple(out)


def _run_commit(model: Model, db: Db, step: tuple[object, ...], now: int) -> None:
    _, checks, specs, _ = step
    assert isinstance(checks, list) and isinstance(specs, list)
    commit = AtomicCommit(_checks(model, db, checks, now), tuple(_mutation(s) for s in specs))
    before = db.index.entries()
    record = encode_record(commit, now)
    next_stamp = Versionstamp.from_offset(Offset(1, db.position + len(record)))
    expected = _model_commit(model, checks, specs, now, next_stamp.value)
    if expected == "type_error":
        with pytest.raises(BadRequest):
            db.commit(commit, now)
        assert db.index.entries() == before
        return
    stamp = db.commit(commit, now)
    assert (stamp is not None) == (expected == "ok")
    assert stamp is None or stamp == next_stamp


def _model_list(model: Model, form: str, picks: tuple[int, int, int], reverse: bool) -> list[Key] | None:
    """The keys the listing should give, or None when it should be a 400."""
    prefix, start, end = PREFIXES[picks[0]], KEYS[picks[1]], KEYS[picks[2]]

    def under(key: Key) -> bool:
        return len(key) > len(prefix) and same_key(key[: len(prefix)], prefix)

    live = sorted((KEYS[i] for i in model.visible(model.clock)), key=reference_order)
    if form == "start+end":
        if reference_order(start) > reference_order(end):
            return None
        chosen = [key for key in live if reference_order(start) <= reference_order(key) < reference_order(end)]
    else:
        bound = start if form == "prefix+start" else end
        if form != "prefix" and not under(bound):
            return None
        chosen = [key for key in live if under(key)]
        if form == "prefix+start":
            chosen = [key for key in chosen if reference_order(key) >= reference_order(start)]
        if form == "prefix+end":
            chosen = [key for key in chosen if reference_order(key) < reference_order(end)]
    return chosen[::-1] if reverse else chosen


def _run_list(model: Model, db: Db, step: tuple[object, ...]) -> None:
    _, form, picks, (reverse, limit) = step  # type: ignore[misc]
    assert isinstance(form, str) and isinstance(picks, tuple)
    prefix, start, end = (encode_key(PREFIXES[picks[0]]), encode_key(KEYS[picks[1]]), encode_key(KEYS[picks[2]]))
    selector = {
        "prefix": ListSelector(prefix=prefix),
        "prefix+start": ListSelector(prefix=prefix, start=start),
        "prefix+end": ListSelector(prefix=prefix, end=end),
        "start+end": ListSelector(start=start, end=end),
    }[form]
    expected = _model_list(model, form, picks, reverse)
    if expected is None:
        with pytest.raises(BadRequest):
            db.index.list(selector, limit=limit, reverse=reverse)
        return
    got = _all_pages(db.index, selector, limit, reverse)
    assert [encode_key(key) for key in got] == [encode_key(key) for key in expected]


def _same_answers(index: KvIndex, other: KvIndex) -> None:
    assert other.entries() == index.entries()
    assert other.last_versionstamp == index.last_versionstamp
    assert other.clock_ms == index.clock_ms
    assert other.expired_keys(2**62, 100) == index.expired_keys(2**62, 100)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_random_commits_match_the_model_and_replay_and_snapshots_agree(run: list[tuple[object, ...]]) -> None:
    db, model, now = Db(), Model(), 1000
    for step in run:
        if step[0] == "commit":
            now += int(step[3]) - 5  # type: ignore[call-overload]  # sometimes behind the index's clock
            _run_commit(model, db, step, now)
            for later in (0, 1, 10, 25):
                _compare_all(model, db, now + later)
        elif step[0] == "list":
            _run_list(model, db, step)
        elif step[0] == "reload":
            reloaded = load_snapshot(encode_snapshot(db.index))
            _same_answers(db.index, reloaded)
            db.index = reloaded
        else:
            at = now + (int(step[2]) if step[0] == "read_later" else 0)  # type: ignore[call-overload]
            picked = list(step[1])  # type: ignore[call-overload]
            got = db.index.get_many([encode_key(KEYS[i]) for i in picked], at)
            live = model.visible(at)
            assert [_view(e) for e in got] == [_model_view(live.get(i)) for i in picked]
    _same_answers(db.index, db.replayed())
    _same_answers(db.index, load_snapshot(encode_snapshot(db.index)))


def _compare_all(model: Model, db: Db, at: int) -> None:
    live = model.visible(at)
    got = [_view(db.index.get(encode_key(key), at)) for key in KEYS]
    assert got == [_model_view(live.get(i)) for i in range(len(KEYS))]


def _view(entry: Entry | None) -> tuple[bytes, int, int | None] | None:
    return None if entry is None else (entry.value, entry.versionstamp.value, entry.expires_at_ms)


def _model_view(entry: tuple[bytes, int, int | None] | None) -> tuple[bytes, int, int | None] | None:
    return entry


def test_a_list_page_costs_its_page_not_the_database() -> None:
    entries = [Entry(k("big", i), encode_value(i), Versionstamp(1)) for i in range(20_000)]
    index = KvIndex.restore(entries, Versionstamp(1), 0)
    keys = index._keys

    class Counting:
        visited = 0

        def irange(self, low: bytes, high: bytes, *, reverse: bool = False) -> Iterator[bytes]:
            for key in keys.irange(low, high, reverse=reverse):
                self.visited += 1
                yield key

    counting = Counting()
    index._keys = counting  # type: ignore[assignment]
    page = index.list(ListSelector(prefix=k("big")), limit=10, cursor=encode_cursor(k("big", 12_345)))
    assert [e.decoded_value for e in page.entries] == list(range(12_346, 12_356))
    page = index.list(ListSelector(prefix=k("big")), limit=10, reverse=True, cursor=page.cursor)
    assert [e.decoded_value for e in page.entries] == list(range(12_354, 12_344, -1))
    assert counting.visited <= 2 * 11  # each page reads one key past its last, to know whether more follow
