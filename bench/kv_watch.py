"""The KV watch case of bench/kv.py: N watchers on one database's change stream through ONE edge.

Watchers read ``/v1/stream/__kv/<db>?offset=<tail>&live=sse`` at the edge (the same read the
KV API's unfiltered watch redirects to), from the offset of the database's last commit before
they connect. Once every watcher has had its first control event (it is subscribed), one writer
commits at a steady rate: each commit checks the watched key's versionstamp (the writer's
previous one) and sets the key to ``{"i": k, "t": <send time, ns since the epoch>, "pad": ...}``.
Delivery latency = the time a watcher receives the change - ``t`` (the writer's time just
before it sent the commit, on the same machine and clock), so it covers the commit itself
(validation, fdatasync), the origin → edge hop and the edge's fan-out.

Two kinds of watchers, together ``watchers``:

* most are bench/sse_readers.c (driven through ``live_client.NativeReaders``: one epoll loop in
  C, kernel receive timestamps, a bitmap of the messages each reader got, so missed and
  duplicated changes are counted per reader). The C readers find ``"i"``/``"t"`` in the first
  ``{...}`` of each event, which is the set's value (the key holds strings only), so the change
  events need no special format;
* ``order_watchers`` are Python (aiohttp + the client's SSE parser) and check everything per
  event: the event's offset and versionstamp rise, ``i`` is exactly the previous ``i`` + 1 (the
  writer commits in ``i`` order, one at a time), nothing twice, and the offset/versionstamp of
  each change is the one the writer's commit was answered with. Their latency is user-space
  (``time.time_ns()`` when the chunk was read), and also given against the event's ``at`` (the
  origin's commit time, ms).

After the last commit the change stream is read back from the start offset at the origin: the
commits it holds are the ones every watcher must have, once, in order.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import compare_origin as co  # noqa: E402  (Http, process CPU time, log)
import live_client  # noqa: E402  (NativeReaders: bench/sse_readers.c, stats)

from plugin_streams.sse import Parser  # noqa: E402  (the client's SSE parser)

WATCH_KEY = ["bench", "watch"]  # strings only: the C readers' first "{...}" of an event is the value
PAD = "w" * 60  # the value is ~100 bytes of JSON, as in the commit case


@dataclass
class WatchPlan:
    origin_url: str
    edge_url: str
    db: str
    watchers: int
    order_watchers: int
    rate: float  # commits per second
    commits: int
    writer_url: str  # where the writer commits (the origin, or the edge with --watch-writer edge)
    pids: dict[str, int]  # edge / origin: their CPU time is reported


@dataclass
class OrderWatcher:
    """One Python watcher's view: every check an event must pass, and its latencies."""

    expected: int = 0  # the next i
    last_offset: str = ""
    last_stamp: str = ""
    ready: bool = False
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    not_rising: int = 0
    wrong_position: int = 0  # an event's offset/versionstamp differ from the writer's answer
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)  # receive time - the writer's send time
    latency_at_ns: list[int] = field(default_factory=list)  # receive time - the event's "at"

    def take(self, event: dict[str, Any], now_ns: int, answers: dict[int, tuple[str, str]]) -> None:
        offset, stamp = event.get("offset", ""), event.get("versionstamp", "")
        if offset <= self.last_offset or stamp <= self.last_stamp:
            self.not_rising += 1
        self.last_offset, self.last_stamp = max(offset, self.last_offset), max(stamp, self.last_stamp)
        for change in event.get("changes", []):
            value = change.get("value")
            if change.get("key") != WATCH_KEY or not isinstance(value, dict) or "i" not in value:
                continue
            i = value["i"]
            if i < self.expected:
                self.duplicates += 1
                continue
            if i > self.expected:
                self.out_of_order += 1
            self.expected = i + 1
            self.received += 1
            if answers.get(i, (offset, stamp)) != (offset, stamp):
                self.wrong_position += 1
            self.latency_ns.append(now_ns - value["t"])
            self.latency_at_ns.append(now_ns - event["at"] * 1_000_000)


async def _order_watch(
    session: aiohttp.ClientSession,
    plan: WatchPlan,
    start: str,
    me: OrderWatcher,
    answers: dict[int, tuple[str, str]],
    stop: asyncio.Event,
) -> None:
    """Read the change stream by SSE at the edge, resuming from the last control event's offset."""
    url = f"{plan.edge_url}/v1/stream/{quote('__kv/' + plan.db, safe='/')}"
    offset, cursor = start, ""
    while not stop.is_set() and me.reconnects <= 20:
        params = {"offset": offset, "live": "sse"} | ({"cursor": cursor} if cursor else {})
        try:
            async with session.get(url, params=params) as response:
                if response.status != 200:
                    me.errors.append(f"status {response.status}")
                    await asyncio.sleep(0.5)
                    continue
                parser = Parser()
                async for chunk in response.content.iter_any():
                    now_ns = time.time_ns()
                    for sse_event in parser.feed(chunk):
                        if sse_event.event == "control":
                            control = json.loads(sse_event.data)
                            offset = control.get("streamNextOffset", offset)
                            cursor = str(control.get("streamCursor", cursor) or "")
                            me.ready = True
                        elif sse_event.event == "data":
                            for event in json.loads(sse_event.data):
                                me.take(event, now_ns, answers)
                    if stop.is_set():
                        return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            me.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        me.reconnects += 1


async def _commit(
    session: aiohttp.ClientSession, plan: WatchPlan, value: dict[str, Any], expected: str | None
) -> dict[str, Any]:
    body = {
        "checks": [{"key": WATCH_KEY, "versionstamp": expected}],
        "mutations": [{"type": "set", "key": WATCH_KEY, "value": value}],
    }
    async with session.post(f"{plan.writer_url}/kv/api/v1/{plan.db}/atomic", json=body) as response:
        answer = await response.json(content_type=None)
        if response.status != 200 or answer.get("ok") is not True:
            raise RuntimeError(f"commit -> {response.status} {answer}")
        return dict(answer)


def _cpu_s(pid: int | None) -> float:
    return (co._proc_cpu_seconds(pid) or 0.0) if pid else 0.0


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _wait(check, deadline_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _stored_values(origin_url: str, db: str, start: str) -> list[int]:
    """The i of every watched-key change in the change stream after `start`, in stream order."""
    http = co.Http(origin_url)
    path = f"/v1/stream/{quote('__kv/' + db, safe='/')}"
    found: list[int] = []
    offset = start
    try:
        for _ in range(10_000):
            status, headers, body = http.request("GET", f"{path}?offset={quote(offset, safe='')}")
            if status != 200:
                raise RuntimeError(f"read-back GET -> {status}")
            for event in json.loads(body) if body else []:
                found += [c["value"]["i"] for c in event["changes"] if c["key"] == WATCH_KEY]
            following = headers.get("stream-next-offset", offset)
            if headers.get("stream-up-to-date", "").lower() == "true" or following == offset:
                break
            offset = following
    finally:
        http.close()
    return found


async def run_watch(plan: WatchPlan) -> dict[str, Any]:
    """Seed the database, subscribe the watchers, commit, drain, verify; every figure as a dict."""
    res: dict[str, Any] = {"problems": []}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        seed = await _commit(session, plan, {"i": -1, "t": time.time_ns(), "pad": PAD}, None)
        start, last_stamp = seed["offset"], seed["versionstamp"]
        native_count = plan.watchers - plan.order_watchers
        native = None
        if native_count > 0:
            args = SimpleNamespace(
                url=plan.edge_url,
                path=f"/v1/stream/{quote('__kv/' + plan.db, safe='/')}",
                offset=start,
                readers=native_count,
                appends=plan.commits,
                connect_batch=100,
                connect_timeout=120.0,
                drain=30.0,
            )
            native = await asyncio.to_thread(live_client.NativeReaders, args)
        answers: dict[int, tuple[str, str]] = {}
        stop = asyncio.Event()
        mine = [OrderWatcher() for _ in range(plan.order_watchers)]
        tasks = [asyncio.ensure_future(_order_watch(session, plan, start, w, answers, stop)) for w in mine]
        try:
            t0 = time.monotonic()
            if native is not None:
                res["native_connected"] = int((await asyncio.to_thread(native.expect, "CONNECTED"))[0])
                res["native_ready"] = int((await asyncio.to_thread(native.expect, "READY"))[0])
            if not await _wait(lambda: all(w.ready for w in mine), 60):
                res["problems"].append(f"{sum(not w.ready for w in mine)} Python watchers never subscribed")
            res["subscribe_s"] = time.monotonic() - t0
            await asyncio.sleep(1.0)  # settle: the edge has every subscription in place

            cpu0 = {name: _cpu_s(pid) for name, pid in plan.pids.items()}
            load0 = _self_cpu_s() + (native.cpu_s() if native else 0.0)
            wall0 = time.monotonic()
            acks: list[int] = []
            interval = 1.0 / plan.rate
            for i in range(plan.commits):
                sent = time.time_ns()
                answer = await _commit(session, plan, {"i": i, "t": sent, "pad": PAD}, last_stamp)
                acks.append(time.time_ns() - sent)
                if answer["versionstamp"] <= last_stamp:
                    res["problems"].append(f"commit {i}: versionstamp {answer['versionstamp']} not rising")
                last_stamp = answer["versionstamp"]
                answers[i] = (answer["offset"], answer["versionstamp"])
                await asyncio.sleep(max(0.0, wall0 + (i + 1) * interval - time.monotonic()))
            written_s = time.monotonic() - wall0

            if native is not None:
                await asyncio.to_thread(native.tell, f"TARGET {plan.commits}")
                res["native_drained"] = int((await asyncio.to_thread(native.expect, "DRAINED"))[0])
            if not await _wait(lambda: all(w.received >= plan.commits for w in mine), 30):
                res["problems"].append("Python watchers did not all get every commit within 30 s")
            wall = time.monotonic() - wall0
            load_cpu = _self_cpu_s() + (native.cpu_s() if native else 0.0) - load0
            res["cpu_pct"] = {name: 100 * (_cpu_s(pid) - cpu0[name]) / wall for name, pid in plan.pids.items()}
            res["load_cpu_pct"] = 100 * load_cpu / wall
            res["written_s"], res["mean_interval_ms"] = written_s, 1000 * written_s / max(1, plan.commits)
            res["writer_ack_ms"] = live_client.stats(acks)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if native is not None and native.proc.poll() is None:
                await asyncio.to_thread(native.tell, "CLOSE")
                await asyncio.to_thread(native.expect, "CLOSED")

    stored = await asyncio.to_thread(_stored_values, plan.origin_url, plan.db, start)
    res["stored"] = len(stored)
    if stored != list(range(plan.commits)):
        res["problems"].append(f"the change stream holds {len(stored)} commits, not 0..{plan.commits - 1} in order")
    if native is not None:
        res["native"] = await asyncio.to_thread(native.finish, set(stored))
    res["python"] = _python_summary(mine, len(stored))
    return res


def _python_summary(mine: list[OrderWatcher], stored: int) -> dict[str, Any]:
    latencies = [x for w in mine for x in w.latency_ns]
    at_latencies = [x for w in mine for x in w.latency_at_ns]
    return {
        "watchers": len(mine),
        "expected": stored * len(mine),
        "received": sum(w.received for w in mine),
        "incomplete": sum(w.received < stored for w in mine),
        "duplicates": sum(w.duplicates for w in mine),
        "out_of_order": sum(w.out_of_order for w in mine),
        "not_rising": sum(w.not_rising for w in mine),
        "wrong_position": sum(w.wrong_position for w in mine),
        "reconnects": sum(w.reconnects for w in mine),
        "errors": [e for w in mine for e in w.errors][:5],
        "latency_ms": live_client.stats(latencies),
        "latency_at_ms": live_client.stats(at_latencies),
    }
