"""Property-based: random atomic commits (checks; set, delete, sum, min, max) and reads (get,
get-many, list with prefix/reverse/limit/cursor) over HTTP to a real origin, against a plain dict.

The model's rules are Deno's: a commit whose checks do not all hold changes nothing (409); a
sum/min/max on a value that is not a KvU64 refuses the whole commit (400); otherwise every mutation
applies in order and every key it touched carries the commit's versionstamp, which rises.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.support.processes import OriginProcess

U64 = 2**64
#: Model keys: ("a",) or ("a", 3): the first part a str, the second an int, so Python's tuple
#: order is the tuple layer's (a shorter key first; within a part, one type).
NAMES = ["a", "b", "ab", "é"]
model_keys = st.one_of(st.tuples(st.sampled_from(NAMES)), st.tuples(st.sampled_from(NAMES), st.integers(-2, 2)))
plain_values = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.none(), st.lists(st.booleans(), max_size=2))
u64_values = st.integers(0, U64 - 1).map(lambda n: {"$u64": str(n)})
operands = st.one_of(st.integers(0, 3), st.integers(U64 - 3, U64 - 1))

ModelKey = tuple[Any, ...]


def wire_key(key: ModelKey) -> list[Any]:
    return ["m", key[0], *({"$bigint": str(part)} for part in key[1:])]


def model_key(wire: list[Any]) -> ModelKey:
    return (wire[1], *(int(part["$bigint"]) for part in wire[2:]))


class Http:
    """A kept-alive HTTP/1.1 connection (the machine is synchronous: Hypothesis drives it)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)

    def call(self, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
        target = path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, target, body=data, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


@st.composite
def mutations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["set", "set", "delete", "sum", "min", "max"]))
    key = wire_key(draw(model_keys))
    if kind == "delete":
        return {"type": "delete", "key": key}
    if kind == "set":
        return {"type": "set", "key": key, "value": draw(st.one_of(plain_values, u64_values))}
    operand = draw(operands)
    return {"type": kind, "key": key, "value": draw(st.sampled_from([operand, {"$u64": str(operand)}]))}


class KvModel(RuleBasedStateMachine):
    url = ""
    #: (commits answered 200, 409, 400) over the whole run: the run must have tried each outcome.
    outcomes = {200: 0, 409: 0, 400: 0}

    def __init__(self) -> None:
        super().__init__()
        self.http = Http(self.url)
        self.base = f"/kv/api/v1/model-{uuid.uuid4().hex[:12]}"
        self.entries: dict[ModelKey, tuple[Any, str]] = {}  # key -> (value wire form, versionstamp)
        self.seen_stamps: list[str] = []
        self.last_stamp = ""

    @initialize()
    def start_empty(self) -> None:
        status, answer = self.http.call("GET", f"{self.base}/list", prefix='["m"]')
        assert (status, answer["entries"]) == (200, [])

    @rule(
        data=st.data(),
        check_keys=st.lists(model_keys, max_size=2, unique=True),
        planned=st.lists(mutations(), min_size=1, max_size=6),
    )
    def commit(self, data: st.DataObject, check_keys: list[ModelKey], planned: list[dict[str, Any]]) -> None:
        checks = [{"key": wire_key(key), "versionstamp": self._expected(data, key)} for key in check_keys]
        status, answer = self.http.call("POST", f"{self.base}/atomic", {"checks": checks, "mutations": planned})
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        holds = all(self._current_stamp(model_key(c["key"])) == c["versionstamp"] for c in checks)
        if not holds:
            assert (status, answer) == (409, {"ok": False})
            return
        after = self._apply(planned)
        if after is None:
            assert status == 400 and "KvU64" in answer["error"]["message"], answer
            return
        assert status == 200, answer
        stamp = answer["versionstamp"]
        assert stamp > self.last_stamp
        self.last_stamp = stamp
        self.seen_stamps.append(stamp)
        touched = {model_key(m["key"]) for m in planned}
        self.entries = {k: (v, stamp if k in touched else s) for k, (v, s) in after.items()}

    def _expected(self, data: st.DataObject, key: ModelKey) -> str | None:
        stale: list[str | None] = [None, "0" * 20, *self.seen_stamps[-3:]]
        current = self._current_stamp(key)
        return data.draw(st.one_of(st.just(current), st.just(current), st.sampled_from(stale)))

    def _current_stamp(self, key: ModelKey) -> str | None:
        found = self.entries.get(key)
        return None if found is None else found[1]

    def _apply(self, planned: list[dict[str, Any]]) -> dict[ModelKey, tuple[Any, str]] | None:
        """The entries after `planned` (new versionstamps filled in by the caller), None on a 400."""
        state = dict(self.entries)
        for mutation in planned:
            key = model_key(mutation["key"])
            if mutation["type"] == "set":
                state[key] = (mutation["value"], "")
            elif mutation["type"] == "delete":
                state.pop(key, None)
            else:
                operand = _operand(mutation["value"])
                current = state.get(key)
                if current is None:
                    result = operand
                elif not (isinstance(current[0], dict) and set(current[0]) == {"$u64"}):
                    return None
                else:
                    old = int(current[0]["$u64"])
                    ops = {"sum": (old + operand) % U64, "min": min(old, operand), "max": max(old, operand)}
                    result = ops[mutation["type"]]
                state[key] = ({"$u64": str(result)}, "")
        return state

    @rule(key=model_keys)
    def get(self, key: ModelKey) -> None:
        status, answer = self.http.call("GET", f"{self.base}/keys", key=json.dumps(wire_key(key)))
        assert status == 200
        expected = self.entries.get(key)
        assert (answer["value"], answer["versionstamp"]) == (expected or (None, None))

    @rule(keys=st.lists(model_keys, min_size=1, max_size=10))
    def get_many(self, keys: list[ModelKey]) -> None:
        status, answer = self.http.call("POST", f"{self.base}/get-many", {"keys": [wire_key(k) for k in keys]})
        assert status == 200
        got = [(e["value"], e["versionstamp"]) for e in answer["entries"]]
        assert got == [self.entries.get(k) or (None, None) for k in keys]

    @rule(prefix=st.sampled_from([(), *((name,) for name in NAMES)]), reverse=st.booleans(), page=st.integers(1, 7))
    def list_pages(self, prefix: ModelKey, reverse: bool, page: int) -> None:
        expected = sorted((k for k in self.entries if k[: len(prefix)] == prefix and k != prefix), reverse=reverse)
        listed: list[ModelKey] = []
        cursor = None
        while True:
            query = {"prefix": json.dumps(["m", *prefix]), "limit": str(page)}
            query["reverse"] = "true" if reverse else "false"
            if cursor is not None:
                query["cursor"] = cursor
            status, answer = self.http.call("GET", f"{self.base}/list", **query)
            assert status == 200 and len(answer["entries"]) <= page
            for entry in answer["entries"]:
                key = model_key(entry["key"])
                assert (entry["value"], entry["versionstamp"]) == self.entries[key]
                listed.append(key)
            cursor = answer["cursor"]
            if cursor is None:
                break
        assert listed == expected

    def teardown(self) -> None:
        self.http.connection.close()

    @invariant()
    def versionstamps_are_commits(self) -> None:
        assert all(stamp in self.seen_stamps for _, stamp in self.entries.values())


def _operand(wire: Any) -> int:
    return int(wire["$u64"]) if isinstance(wire, dict) else int(wire)


@pytest.fixture(scope="module")
def model_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    with OriginProcess(tmp_path_factory.mktemp("kv-model") / "data") as process:
        yield process


@pytest.mark.timeout(120)
def test_random_commits_and_reads_match_a_dict(model_origin: OriginProcess) -> None:
    KvModel.url = model_origin.url
    KvModel.outcomes = {200: 0, 409: 0, 400: 0}
    run_state_machine_as_test(
        KvModel,
        settings=settings(
            max_examples=100,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    print(f"commits answered by status: {KvModel.outcomes}")
    assert KvModel.outcomes[200] >= 100 and KvModel.outcomes[409] >= 10 and KvModel.outcomes[400] >= 5, KvModel.outcomes
