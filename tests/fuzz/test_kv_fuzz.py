"""A small fuzz of the KV and queue API at a real origin: valid requests to every route, mutated at
random (the body's bytes, its JSON tree, the query string, the path's database and group names),
sent one at a time. Every answer must be a non-5xx within its deadline (no hang), with the API's
error body on a 4xx, and a refused request must leave the database's change stream where it was.

Seeded (KV_FUZZ_SEED, KV_FUZZ_REQUESTS to run longer); every finding names the request that made it.
A database is seeded with a key, queued messages and a long lease; once a request to it succeeds
(which may set an expiry or a short lease the sweeper will act on later), the next request gets a
freshly seeded database, so a moving tail can only be the refused request's doing.
"""

from __future__ import annotations

import copy
import json
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

from tests.fuzz.findings import TRIED
from tests.support.processes import OriginProcess

SEED = int(os.environ.get("KV_FUZZ_SEED", "14"))
REQUESTS = int(os.environ.get("KV_FUZZ_REQUESTS", "700"))
#: Beyond the time a request may legitimately take (a lease waits at most waitMs).
DEADLINE_S = 5.0
#: aiohttp refuses a longer request line (400, plain text) before any route sees it: HTTP's business.
MAX_TARGET_BYTES = 8190
NO_BODY: Any = object()

WEIRD_JSON: list[Any] = [
    None,
    True,
    -1,
    0,
    2**64,
    10**40,
    1.5,
    "",
    "x" * 3000,
    "00000000000000000000",
    [],
    {},
    {"$u64": "1"},
    {"$bytes": "!"},
    {"$bigint": "1e9"},
    {"$number": "NaN"},
    {"$json": 1},
    [["seed"]],
    [[[[[[[[[[[]]]]]]]]]]],
]
WEIRD_TEXT = [
    "",
    "[",
    "[]",
    "null",
    "-1",
    "now",
    "%",
    "\x00",
    "ü",
    "9" * 40,
    '["a",{"$bigint":"1e9"}]',
    "[" * 3000,
    "0000000000000000_0000000000000000",
    "9999999999999999_9999999999999999",
    '[{"$bytes":"AA"}]',
    "true",
    "1001",
]
RAW_BODIES = [b"", b"{", b"[", b"\xff\xfe", b"NaN", b"Infinity", b'{"a":1}{', b"[" * 50_000, b"\x00" * 10]


@dataclass
class Route:
    method: str
    path: str  # {group} is the seeded group
    body: Any = NO_BODY
    query: dict[str, str] = field(default_factory=dict)


def routes(token: int, stamp: str, message_id: str) -> list[Route]:
    key = json.dumps(["seed"])
    commit = {
        "checks": [{"key": ["seed"], "versionstamp": stamp}, {"key": ["none"], "versionstamp": None}],
        "mutations": [
            {"type": "set", "key": ["a", {"$bigint": "1"}], "value": {"v": [1, 2]}, "expireIn": 60_000},
            {"type": "delete", "key": ["seed"]},
            {"type": "sum", "key": ["n"], "value": {"$u64": "3"}},
            {"type": "enqueue", "value": 1, "delay": 0, "keysIfUndelivered": [["u"]], "backoffSchedule": [100]},
        ],
    }
    return [
        Route("GET", "/keys", query={"key": key}),
        Route("PUT", "/keys", body={"$u64": "5"}, query={"key": key, "expireIn": "60000"}),
        Route("DELETE", "/keys", query={"key": key}),
        Route("POST", "/get-many", body={"keys": [["seed"], ["x", 1.5, True]]}),
        Route("GET", "/list", query={"prefix": "[]", "limit": "5", "reverse": "true"}),
        Route("GET", "/list", query={"start": '["a"]', "end": '["z"]', "cursor": "AA"}),
        Route("POST", "/atomic", body=commit),
        Route("GET", "/watch", query={"offset": "-1"}),
        Route("GET", "/watch", query={"offset": "-1", "prefix": key}),
        Route("GET", "/watch", query={"offset": "now", "live": "long-poll"}),
        Route("POST", "/queue/enqueue", body={k: v for k, v in commit["mutations"][3].items() if k != "type"}),
        Route("GET", "/queue/stats"),
        Route("GET", "/queue/groups"),
        Route("PUT", "/queue/groups/{group}", body={"from": "-1"}),
        Route("POST", "/queue/groups/{group}/lease", body={"worker": "w", "leaseMs": 60_000, "max": 2, "waitMs": 0}),
        Route("POST", "/queue/groups/{group}/ack", body={"token": token, "atomic": {"checks": [], "mutations": []}}),
        Route("POST", "/queue/groups/{group}/nack", body={"token": token, "error": "e", "delayMs": 10}),
        Route("POST", "/queue/groups/{group}/extend", body={"token": token, "leaseMs": 60_000}),
        Route("POST", "/queue/groups/{group}/term", body={"token": token, "error": "e"}),
        Route("POST", "/queue/groups/{group}/reset", body={"from": message_id}),
        Route("GET", "/queue/groups/{group}/dlq", query={"limit": "10", "after": message_id}),
        Route("POST", "/queue/groups/{group}/dlq/redrive", body={"ids": [message_id]}),
    ]


# ---- mutations ----------------------------------------------------------------------------------


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    if not data or rng.random() < 0.15:
        return rng.choice(RAW_BODIES)
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 8))
    choice = rng.randrange(4)
    if choice == 0:
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
    if choice == 1:
        return data[:i] + data[j:]
    if choice == 2:
        return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 6))) + data[i:]
    return data[:i]


def _containers(tree: Any) -> list[Any]:
    found = []
    if isinstance(tree, dict | list):
        found.append(tree)
        for child in tree.values() if isinstance(tree, dict) else tree:
            found += _containers(child)
    return found


def mutate_json(rng: random.Random, tree: Any) -> Any:
    tree = copy.deepcopy(tree)
    places = _containers(tree)
    if not places:
        return rng.choice(WEIRD_JSON)
    place = rng.choice(places)
    slots = list(place) if isinstance(place, dict) else list(range(len(place)))
    action = rng.randrange(4)
    if action == 0 and slots:
        place[rng.choice(slots)] = copy.deepcopy(rng.choice(WEIRD_JSON))
    elif action == 1 and slots:
        del place[rng.choice(slots)]
    elif action == 2 and isinstance(place, dict):
        place[rng.choice(["extra", "$u64", "type", "key", "value", "expire_in"])] = rng.choice(WEIRD_JSON)
    elif action == 2:
        place.append(copy.deepcopy(rng.choice(WEIRD_JSON)))
    else:
        return [tree] if rng.random() < 0.5 else rng.choice(WEIRD_JSON)
    return tree


def mutate_query(rng: random.Random, query: dict[str, str]) -> list[tuple[str, str]]:
    pairs = list(query.items())
    for _ in range(rng.randint(1, 2)):
        action = rng.randrange(4)
        if action == 0 and pairs:
            i = rng.randrange(len(pairs))
            pairs[i] = (pairs[i][0], rng.choice(WEIRD_TEXT))
        elif action == 1 and pairs:
            pairs.pop(rng.randrange(len(pairs)))
        elif action == 2:
            name = rng.choice(["key", "prefix", "start", "end", "limit", "cursor", "offset", "live", "expireIn", "x"])
            pairs.append((name, rng.choice(WEIRD_TEXT)))
        elif pairs:
            pairs.append(rng.choice(pairs))
    return pairs


@dataclass
class Sent:
    method: str
    url: str
    body: bytes | None
    query: list[tuple[str, str]]

    def describe(self) -> str:
        body = None if self.body is None else self.body[:300]
        return f"{self.method} {self.url[:200]} query={[(k, v[:80]) for k, v in self.query]} body={body!r}"

    def target_bytes(self) -> int:
        return len(self.url) + len(urlencode(self.query))


def fuzzed(rng: random.Random, base: str, route: Route) -> Sent:
    path = route.path.replace("{group}", "g")
    db_part = base
    if rng.random() < 0.05:
        db_part = base.rsplit("/", 1)[0] + "/" + quote(rng.choice(WEIRD_TEXT) or "%20", safe="")
    if "{group}" in route.path and rng.random() < 0.05:
        path = route.path.replace("{group}", quote(rng.choice(WEIRD_TEXT) + "g", safe=""))
    body = None if route.body is NO_BODY else json.dumps(route.body).encode()
    query = list(route.query.items())
    kind = rng.random()
    if kind < 0.08:
        pass  # the valid request itself, now and then
    elif kind < 0.35 or body is None:
        query = mutate_query(rng, route.query)
        if body is not None and rng.random() < 0.3:
            body = mutate_bytes(rng, body)
    elif kind < 0.65:
        body = mutate_bytes(rng, body)
    else:
        body = json.dumps(mutate_json(rng, route.body)).encode()
    return Sent(route.method, db_part + path, body, query)


def deadline(sent: Sent) -> float:
    """A lease may wait up to its waitMs: the deadline allows for it."""
    try:
        wait = json.loads(sent.body or b"").get("waitMs", 0)
    except (ValueError, AttributeError, RecursionError):
        wait = 0
    waits = isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= 30_000
    return DEADLINE_S + (wait / 1000 if waits else 0)


# ---- the run ----------------------------------------------------------------------------------------


@pytest.fixture(params=["file", "postgres"])
def fuzz_origin(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[OriginProcess]:
    """An origin on each engine: the postgres one decides KV writes against the log as every origin wrote it."""
    flags: tuple[str, ...] = ()
    if request.param == "postgres":
        flags = ("--engine", "postgres", "--database-url", request.getfixturevalue("postgres_dsn"))
    with OriginProcess(tmp_path_factory.mktemp("kv-fuzz") / "data", *flags, long_poll_timeout=0.5) as process:
        yield process


class Target:
    """A seeded database: a key, two messages, group g with a long lease (nothing the sweeper touches)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.db = f"fz-{uuid.uuid4().hex[:10]}"
        self.base = f"{url}/kv/api/v1/{self.db}"

    async def seed(self) -> list[Route]:
        async with self.http.put(f"{self.base}/keys", params={"key": '["seed"]'}, json="v") as r:
            stamp = (await r.json())["versionstamp"]
        for value in (1, 2):
            async with self.http.post(f"{self.base}/queue/enqueue", json={"value": value}) as r:
                message_id = (await r.json())["id"]
        lease = {"worker": "w", "leaseMs": 600_000}
        async with self.http.post(f"{self.base}/queue/groups/g/lease", json=lease) as r:
            token = (await r.json())["messages"][0]["token"]
        return routes(token, stamp, message_id)

    async def tail(self) -> str | None:
        async with self.http.head(f"{self.url}/v1/stream/__kv/{self.db}") as r:
            return r.headers.get("Stream-Next-Offset")


async def send(http: aiohttp.ClientSession, sent: Sent) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=deadline(sent))
    async with http.request(
        sent.method, sent.url, params=sent.query, data=sent.body, headers=headers, timeout=timeout
    ) as r:
        return r.status, await r.read()


def check(sent: Sent, status: int, body: bytes, moved: bool, problems: list[str]) -> None:
    if status >= 500:
        problems.append(f"{status} {body[:200]!r} for {sent.describe()}")
    elif status >= 400:
        try:
            error = json.loads(body)["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
        except Exception:
            refused_by_http = sent.target_bytes() > MAX_TARGET_BYTES - 100
            if not (status == 409 and body == b'{"ok":false}') and not refused_by_http:
                problems.append(f"{status} without the API's error body {body[:200]!r} for {sent.describe()}")
        if moved:
            problems.append(f"{status} moved the change stream's tail: {sent.describe()}")


async def test_fuzz_kv_and_queue_routes(fuzz_origin: OriginProcess, request: pytest.FixtureRequest) -> None:
    rng = random.Random(SEED)
    problems: list[str] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as http:
        target = Target(http, fuzz_origin.url)
        catalogue = await target.seed()
        for _ in range(REQUESTS):
            sent = fuzzed(rng, target.base, rng.choice(catalogue))
            before = await target.tail()
            try:
                status, body = await send(http, sent)
            except TimeoutError:
                problems.append(f"no answer within {deadline(sent)} s: {sent.describe()}")
                continue
            statuses[status] = statuses.get(status, 0) + 1
            check(sent, status, body, await target.tail() != before, problems)
            if status < 400:
                target = Target(http, fuzz_origin.url)
                catalogue = await target.seed()
    log = fuzz_origin.log_path.read_text(errors="replace")
    crashes = [line for line in log.splitlines() if "Traceback" in line or "Error handling request" in line]
    summary = f"kv routes: {REQUESTS} requests (seed {SEED}), statuses {dict(sorted(statuses.items()))}"
    request.config.stash.setdefault(TRIED, []).append(summary)
    assert not problems, "\n".join(problems[:20])
    assert not crashes, log[-4000:]
    assert sum(n for s, n in statuses.items() if s < 400) > 20 and sum(statuses.values()) == REQUESTS
