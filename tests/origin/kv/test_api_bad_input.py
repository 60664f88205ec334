"""Bad input to every KV and queue route: each case gets its 4xx with the API's error body
(`{"error":{"code","message"}}`) and changes nothing: the change stream's tail, the keys and the
queue are as before. And the change stream itself is written only by the KV API: protocol and
REST writes to `__kv/...` get 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.origin.kv.conftest import NO_BODY, KvApi
from tests.support.processes import OriginProcess

GOOD_KEY = json.dumps(["seed"])
STAMP = "0" * 20


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any = NO_BODY
    raw: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    status: int = 400
    code: str | None = None


def atomic(*mutations: Any, checks: Any = ()) -> dict[str, Any]:
    return {"checks": list(checks), "mutations": list(mutations)}


CASES = {
    # -- keys: malformed keys ------------------------------------------------------------------
    "key missing": Case("GET", "/keys"),
    "key not JSON": Case("GET", "/keys", params={"key": "seed"}),
    "key an object": Case("GET", "/keys", params={"key": '{"a":1}'}, code="bad_key"),
    "key part null": Case("GET", "/keys", params={"key": '["a",null]'}, code="bad_key"),
    "key part a list": Case("PUT", "/keys", body=1, params={"key": '["a",[1]]'}, code="bad_key"),
    "key bigint not decimal": Case("PUT", "/keys", body=1, params={"key": '[{"$bigint":"1x"}]'}, code="bad_key"),
    "key bytes not base64url": Case("PUT", "/keys", body=1, params={"key": '[{"$bytes":"%%"}]'}),
    "key number marker unknown": Case("PUT", "/keys", body=1, params={"key": '[{"$number":"1"}]'}, code="bad_key"),
    "key NaN literal": Case("PUT", "/keys", body=1, params={"key": "[NaN]"}),
    "key empty on set": Case("PUT", "/keys", body=1, params={"key": "[]"}),
    "key empty on delete": Case("DELETE", "/keys", params={"key": "[]"}),
    # -- values ---------------------------------------------------------------------------------
    "value not JSON": Case("PUT", "/keys", raw=b"{nope", params={"key": GOOD_KEY}),
    "value empty body": Case("PUT", "/keys", raw=b"", params={"key": GOOD_KEY}),
    "value not UTF-8": Case("PUT", "/keys", raw=b'"\xff\xfe"', params={"key": GOOD_KEY}),
    "value Infinity literal": Case("PUT", "/keys", raw=b"Infinity", params={"key": GOOD_KEY}),
    "value deeply nested": Case("PUT", "/keys", raw=b"[" * 100_000 + b"]" * 100_000, params={"key": GOOD_KEY}),
    "value u64 negative": Case("PUT", "/keys", body={"$u64": "-1"}, params={"key": GOOD_KEY}),
    "value u64 too big": Case("PUT", "/keys", body={"$u64": str(2**64)}, params={"key": GOOD_KEY}),
    "value bytes not base64url": Case("PUT", "/keys", body={"$bytes": "!!"}, params={"key": GOOD_KEY}),
    "expireIn zero": Case("PUT", "/keys", body=1, params={"key": GOOD_KEY, "expireIn": "0"}),
    "expireIn not a number": Case("PUT", "/keys", body=1, params={"key": GOOD_KEY, "expireIn": "soon"}),
    # -- atomic: structure, mutation types, versionstamps ---------------------------------------------
    "atomic not an object": Case("POST", "/atomic", body=[1]),
    "atomic unknown field": Case("POST", "/atomic", body={**atomic(), "extra": 1}),
    "atomic mutations not a list": Case("POST", "/atomic", body={"checks": [], "mutations": {}}),
    "mutation unknown type": Case("POST", "/atomic", body=atomic({"type": "increment", "key": ["seed"]})),
    "mutation without type": Case("POST", "/atomic", body=atomic({"key": ["seed"], "value": 1})),
    "mutation unknown field": Case(
        "POST", "/atomic", body=atomic({"type": "set", "key": ["seed"], "value": 1, "expire_in": 5})
    ),
    "set without value": Case("POST", "/atomic", body=atomic({"type": "set", "key": ["seed"]})),
    "sum operand not u64": Case("POST", "/atomic", body=atomic({"type": "sum", "key": ["n"], "value": "five"})),
    "sum operand negative": Case("POST", "/atomic", body=atomic({"type": "sum", "key": ["n"], "value": -1})),
    "sum on a non-KvU64": Case("POST", "/atomic", body=atomic({"type": "sum", "key": ["seed"], "value": 1})),
    "set then sum on a non-KvU64": Case(
        "POST",
        "/atomic",
        body=atomic({"type": "set", "key": ["other"], "value": 1}, {"type": "max", "key": ["seed"], "value": 1}),
    ),
    "versionstamp short": Case("POST", "/atomic", body=atomic(checks=[{"key": ["seed"], "versionstamp": "00ff"}])),
    "versionstamp not hex": Case("POST", "/atomic", body=atomic(checks=[{"key": ["seed"], "versionstamp": "g" * 20}])),
    "versionstamp a number": Case("POST", "/atomic", body=atomic(checks=[{"key": ["seed"], "versionstamp": 5}])),
    "check without versionstamp": Case("POST", "/atomic", body=atomic(checks=[{"key": ["seed"]}])),
    "enqueue delay negative": Case("POST", "/atomic", body=atomic({"type": "enqueue", "value": 1, "delay": -1})),
    "enqueue backoff too long": Case(
        "POST", "/atomic", body=atomic({"type": "enqueue", "value": 1, "backoffSchedule": [1] * 11})
    ),
    # -- get-many and list ------------------------------------------------------------------------
    "get-many keys missing": Case("POST", "/get-many", body={}),
    "get-many a bad key": Case("POST", "/get-many", body={"keys": [["ok"], "nope"]}, code="bad_key"),
    "list without selector": Case("GET", "/list"),
    "list start outside prefix": Case("GET", "/list", params={"prefix": '["a"]', "start": '["b"]'}),
    "list reverse not boolean": Case("GET", "/list", params={"prefix": "[]", "reverse": "yes"}),
    "list cursor garbage": Case("GET", "/list", params={"prefix": "[]", "cursor": "zzz"}),
    # -- watch: bad offsets and filters ----------------------------------------------------------------
    "watch offset garbage": Case("GET", "/watch", params={"offset": "garbage"}),
    "watch offset beyond the tail": Case("GET", "/watch", params={"offset": "9999999999999999_0000000000000000"}),
    "watch prefix not a key": Case("GET", "/watch", params={"offset": "-1", "prefix": "x"}),
    "watch prefix with SSE": Case("GET", "/watch", params={"offset": "-1", "prefix": "[]", "live": "sse"}),
    # -- queue --------------------------------------------------------------------------------------
    "enqueue without body": Case("POST", "/queue/enqueue", raw=b""),
    "enqueue unknown field": Case("POST", "/queue/enqueue", body={"value": 1, "priority": 9}),
    "enqueue bad keysIfUndelivered": Case("POST", "/queue/enqueue", body={"value": 1, "keysIfUndelivered": [[]]}),
    "group from unknown": Case("PUT", "/queue/groups/g2", body={"from": "yesterday"}),
    "lease leaseMs too short": Case("POST", "/queue/groups/g/lease", body={"worker": "w", "leaseMs": 5}),
    "lease max zero": Case("POST", "/queue/groups/g/lease", body={"worker": "w", "max": 0}),
    "lease without worker (new group)": Case("POST", "/queue/groups/fresh/lease", body={"leaseMs": 60_000}),
    "lease worker empty": Case("POST", "/queue/groups/g/lease", body={"worker": ""}),
    "lease waitMs too long": Case("POST", "/queue/groups/g/lease", body={"worker": "w", "waitMs": 10**6}),
    "ack without token": Case("POST", "/queue/groups/g/ack", body={}),
    "ack token a string": Case("POST", "/queue/groups/g/ack", body={"token": "1"}),
    "ack stale token": Case("POST", "/queue/groups/g/ack", body={"token": 987654}, status=409, code="FENCED"),
    "ack unknown group": Case(
        "POST", "/queue/groups/nope/ack", body={"token": 1}, status=404, code="queue_group_not_found"
    ),
    "ack with a bad atomic": Case("POST", "/queue/groups/g/ack", body={"token": 1, "atomic": {"mutations": 1}}),
    "nack stale token": Case("POST", "/queue/groups/g/nack", body={"token": 987654}, status=409, code="FENCED"),
    "extend stale token": Case("POST", "/queue/groups/g/extend", body={"token": 987654}, status=409, code="FENCED"),
    "term stale token": Case("POST", "/queue/groups/g/term", body={"token": 987654}, status=409, code="FENCED"),
    "reset unknown id": Case("POST", "/queue/groups/g/reset", body={"from": "not-an-id"}),
    "dlq limit garbage": Case("GET", "/queue/groups/g/dlq", params={"limit": "many"}),
    "redrive ids not strings": Case("POST", "/queue/groups/g/dlq/redrive", body={"ids": [1, 2]}),
}


@pytest.fixture(scope="module")
def kv_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    """This module's own origin: its stale-token cases need token numbers no other test hands out."""
    with OriginProcess(tmp_path_factory.mktemp("kv-bad") / "data", long_poll_timeout=1.0) as process:
        yield process


async def _seed(kv: KvApi) -> dict[str, Any]:
    """A key, a queue message leased in group g, another waiting: the state no bad request may change."""
    await kv.set(["seed"], "untouched")
    await kv.enqueue("first")
    await kv.enqueue("second")
    await kv.ok("PUT", "/queue/groups/g", body={"from": "-1"})
    leased = await kv.lease("g", leaseMs=60_000)
    return {"tail": await kv.tail(), "stats": await _counts(kv), "token": leased[0]["token"]}


async def _counts(kv: KvApi) -> dict[str, Any]:
    """The group's counters (its oldest message's age grows by itself)."""
    return {name: n for name, n in (await kv.stats("g")).items() if name != "oldestAgeMs"}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_a_4xx_and_changes_nothing(kv: KvApi, name: str) -> None:
    case = CASES[name]
    before = await _seed(kv)
    if case.code != "FENCED":
        assert before["token"] != 987654
    status, body = await kv.call(case.method, case.path, body=case.body, data=case.raw, params=case.params)
    assert status == case.status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str), body
    if case.code is not None:
        assert body["error"]["code"] == case.code, body
    assert await kv.tail() == before["tail"]
    assert await kv.value(["seed"]) == "untouched"
    assert await kv.value(["other"]) is None
    assert await _counts(kv) == before["stats"]


@pytest.mark.parametrize("db", ["-leading-dash", "a" * 129, "sp ace", "ü"])
async def test_a_bad_database_name_is_a_400(kv: KvApi, db: str) -> None:
    bad = KvApi(kv.http, kv.url, db)
    for method, path, body in (
        ("GET", "/keys", NO_BODY),
        ("PUT", "/keys", 1),
        ("POST", "/queue/enqueue", {"value": 1}),
    ):
        status, answer = await bad.call(method, path, body=body, params={"key": GOOD_KEY})
        assert status == 400, (method, path, answer)
        assert "database name" in answer["error"]["message"]


async def test_the_change_stream_is_written_only_by_the_kv_api(kv: KvApi, http: aiohttp.ClientSession) -> None:
    await kv.set(["seed"], "untouched")
    tail = await kv.tail()
    protocol = f"{kv.url}/v1/stream/__kv/{kv.db}"
    rest = f"{kv.url}/streams/api/v1/streams"
    json_type = {"Content-Type": "application/json"}
    attempts = [
        ("POST", protocol, b'[{"changes":[]}]'),
        ("PUT", protocol, b""),
        ("DELETE", protocol, None),
        ("POST", f"{rest}/__kv%2F{kv.db}/append", b'{"messages":[{"changes":[]}]}'),
        ("DELETE", f"{rest}/__kv%2F{kv.db}", None),
        ("POST", rest, json.dumps({"name": f"__kv/{kv.db}-new"}).encode()),
        ("PUT", f"{kv.url}/v1/stream/__kv/{kv.db}-new", b""),
    ]
    for method, url, data in attempts:
        async with http.request(method, url, data=data, headers=json_type) as response:
            assert response.status == 403, (method, url, response.status, await response.text())
    assert await kv.tail() == tail
    assert await kv.value(["seed"]) == "untouched"
    assert await KvApi(http, kv.url, f"{kv.db}-new").tail() is None
