#!/usr/bin/env python3
"""Benchmark the plugin-streams edge (with the origin behind it) against the Node reference server.

One run, one machine, one system at a time: ours is ``plugin-streams origin`` plus
``plugin-streams edge --origin <it>`` (both on the server core); the reference is Node
``@durable-streams/server`` 0.3.7 in memory (on the server core). The load generators run on
the other core. Three cases, the targets of the edge issue:

1. catch-up: GETs of one complete 64 KiB chunk, 16 connections (wrk, bench/lua/read.lua:
   non-2xx answers don't count; bytes per response must fit a 65,536-byte body). Ours: through
   the edge, the chunk warm in the edge cache (checked: no upstream request during the run).
   Node: the same 64 KiB, directly. Target: ours >= 2x Node.
2. long-poll fan-out: 5,000 long-poll readers on one stream (through one edge / directly on
   Node), one writer appending a timestamped message every 100 ms (through the edge / directly).
   Delivery latency p50/p99 (target: ours lower) and, for ours, the origin's GETs per append
   (from the origin's /metrics; target <= 1.05 for one edge process).
3. SSE fan-out: 10,000 SSE readers through one edge at 10 events/s. Delivery p99 (target
   <= 250 ms), edge memory per client (VmRSS with clients - before, / clients; target <= 20 KB)
   and missed/duplicated events per client (0 expected).

Readers and writer: bench/live_client.py (raw sockets, one epoll loop, kernel receive
timestamps), a separate process; for SSE its readers are bench/sse_readers.c (the same readers
in C, built with gcc: 100,000 deliveries a second are more than one Python process can parse on
one core), unless ``--sse-client python``. Prints a markdown report on stdout; progress on stderr; raw
output (wrk, client JSON, metrics, server logs, results.json) under ``--out`` (default
bench/results/<time>-edge/). See bench/README.md.

    .venv/bin/python bench/compare_edge.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import compare_origin as co  # noqa: E402  (bench/compare_origin.py: servers, wrk, machine info)

REPO = BENCH_DIR.parent
LONG_POLL_TIMEOUT_S = co.LONG_POLL_TIMEOUT_S  # 5 s: origin, edge and Node alike
CHUNK = co.CHUNK
CASES = ("catchup", "longpoll", "sse")
TARGET_CATCHUP_RATIO = 2.0
TARGET_UPSTREAM_PER_APPEND = 1.05
TARGET_SSE_P99_MS = 250.0
TARGET_SSE_BYTES_PER_CLIENT = 20_000  # "20 KB", read as 20,000 bytes (the stricter reading)
LABELS = {"ours": "ours: edge → origin", "node": "Node 0.3.7 memory (direct)"}

log = co.log


# --------------------------------------------------------------------------------------------
# Systems under test
# --------------------------------------------------------------------------------------------


class PluginProc(co.OursServer):
    """`plugin-streams origin` or `plugin-streams edge`, pinned to the server core."""

    def __init__(self, role: str, tag: str, ctx: Ctx, origin_url: str | None = None) -> None:
        super().__init__(ctx.data_root, ctx.out_dir, ctx.pinning, ctx.origin_fsync)
        self.role = role
        self.key = f"{role}-{tag}"
        self.origin_url = origin_url
        self.log_path = ctx.out_dir / f"{self.key}.log"

    def command(self) -> list[str]:
        if self.role == "origin":
            return super().command()
        exe = REPO / ".venv" / "bin" / "plugin-streams"
        binary = str(exe) if exe.exists() else (shutil.which("plugin-streams") or str(exe))
        assert self.origin_url is not None
        return [
            binary,
            "edge",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--origin",
            self.origin_url,
            "--long-poll-timeout",
            str(LONG_POLL_TIMEOUT_S),
        ]


class OursSystem:
    """Origin + one edge process. Clients talk to the edge; the origin is reached only by the edge."""

    key = "ours"

    def __init__(self, tag: str, ctx: Ctx) -> None:
        self.ctx, self.tag = ctx, tag
        self.origin = PluginProc("origin", tag, ctx)
        self.edge: PluginProc | None = None
        self.origin_url = self.url = ""
        self.problems: list[str] = []

    def start(self) -> str:
        self.origin_url = self.origin.start()
        self.edge = PluginProc("edge", self.tag, self.ctx, self.origin_url)
        try:
            self.url = self.edge.start()
        except BaseException:
            self.origin.stop()
            raise
        log(f"  origin {self.origin_url} (pid {self.origin.pid}), edge {self.url} (pid {self.edge.pid})")
        return self.url

    @property
    def pid(self) -> int | None:  # the process clients talk to (co.run_wrk measures its CPU)
        return self.edge.pid if self.edge else None

    def pids(self) -> dict[str, int]:
        out = {}
        if self.edge and self.edge.pid:
            out["edge"] = self.edge.pid
        if self.origin.pid:
            out["origin"] = self.origin.pid
        return out

    def scrapes(self) -> dict[str, str]:
        return {"edge": self.url + "/metrics", "origin": self.origin_url + "/metrics"}

    def alive(self) -> bool:
        return self.origin.alive() and self.edge is not None and self.edge.alive()

    def stop(self) -> None:
        for proc in (self.edge, self.origin):
            if proc is None:
                continue
            draining = proc.log_path.exists() and "stopping: draining" in proc.log_path.read_text(errors="replace")
            if draining:
                self.problems.append(f"{proc.key} received SIGTERM/SIGINT from outside this script during the run")
            self.problems += co.stop_and_check(proc)


class NodeSystem:
    key = "node"

    def __init__(self, tag: str, ctx: Ctx) -> None:
        self.server = co.NodeServer(False, ctx.data_root, ctx.out_dir, ctx.pinning)
        self.server.log_path = ctx.out_dir / f"node-{tag}.log"
        self.url = ""
        self.problems: list[str] = []

    def start(self) -> str:
        self.url = self.server.start()
        log(f"  Node {self.url} (pid {self.server.pid})")
        return self.url

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def pids(self) -> dict[str, int]:
        return {"node": self.server.pid} if self.server.pid else {}

    def scrapes(self) -> dict[str, str]:
        return {}

    def alive(self) -> bool:
        return self.server.alive()

    def stop(self) -> None:
        rc = self.server.stop()
        if rc not in (0, None, -signal.SIGTERM):
            self.problems.append(f"Node exit status {rc}")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def scrape(url: str) -> dict[str, float]:
    """ds_* samples of a /metrics endpoint (never timed)."""
    out: dict[str, float] = {}
    http_ = co.Http(url.rsplit("/metrics", 1)[0])
    try:
        status, _, body = http_.request("GET", "/metrics")
    finally:
        http_.close()
    if status != 200:
        return out
    for line in body.decode("utf-8", "replace").splitlines():
        m = re.match(r"^(ds_[a-z_]+)(\{[^}]*\})?\s+(\S+)\s*$", line)
        if m and not m.group(1).endswith(("_bucket", "_created")):
            try:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def msum(metrics: dict | None, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    if not metrics:
        return 0.0
    total = 0.0
    for key, value in metrics.items():
        if not isinstance(value, (int, float)):
            continue
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def proc_kib(pid: int | None, key: str = "VmRSS") -> int | None:
    return co._proc_status_kib(pid, key) if pid else None


def cpu_s(pid: int | None) -> float | None:
    return co._proc_cpu_seconds(pid) if pid else None


class RssSampler:
    """Samples VmRSS of one process every `period` s in a thread (peak while clients are connected)."""

    def __init__(self, pid: int, period: float = 0.25) -> None:
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        for _ in range(10_000_000):
            kib = proc_kib(self.pid)
            if kib is not None:
                self.samples.append((time.time(), kib))
            if self._stop.wait(self.period):
                return

    def peak(self, t0: float, t1: float) -> int | None:
        vals = [kib for t, kib in self.samples if t0 <= t <= t1]
        return max(vals) if vals else None


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def catchup_case(system, ctx: Ctx) -> dict:
    """GETs of one 64 KiB response at c=16; for ours through the edge with the chunk warm."""
    res: dict = {"case": "catchup", "ok": True, "problems": []}
    url = system.url
    path = f"/v1/stream/bench-{system.key}-catchup-{uuid.uuid4().hex[:8]}"
    http_ = co.Http(url)
    try:
        chosen = co.fill_for_catchup(http_, path)  # the same rule as compare_origin.py
        res["read_from"] = chosen[0]
        res["cache_control"] = chosen[2].get("cache-control")
        target = f"{path}?offset={quote(chosen[1], safe='')}"
        scr = system.scrapes()
        if "edge" in scr:
            # the first GET above filled the edge cache; check that the next one is a cache hit
            before = scrape(scr["edge"])
            status, _, body = http_.request("GET", target)
            after = scrape(scr["edge"])
            hits = msum(after, "ds_edge_cache_hits_total") - msum(before, "ds_edge_cache_hits_total")
            ups = msum(after, "ds_edge_upstream_requests_total") - msum(before, "ds_edge_upstream_requests_total")
            res["warm_check"] = {"status": status, "bytes": len(body), "cache_hits": hits, "upstream": ups}
            if not (status == 200 and len(body) == CHUNK and hits >= 1 and ups == 0):
                res["problems"].append(f"the chunk is not served from the edge cache: {res['warm_check']}")
        http_.close()
        if ctx.warmup > 0:  # unmeasured (Node's JIT; our code paths)
            co.run_wrk(
                url + target,
                co.LUA_DIR / "read.lua",
                [str(CHUNK)],
                16,
                ctx.warmup,
                ctx.pinning,
                system,
                ctx.out_dir / f"{system.key}-catchup-warmup.wrk.txt",
            )
        m0 = {k: scrape(u) for k, u in scr.items()}
        origin_cpu0 = cpu_s(system.pids().get("origin"))
        r, spct, lpct = co.run_wrk(
            url + target,
            co.LUA_DIR / "read.lua",
            [str(CHUNK)],
            16,
            ctx.duration,
            ctx.pinning,
            system,
            ctx.out_dir / f"{system.key}-catchup.wrk.txt",
        )
        origin_cpu1 = cpu_s(system.pids().get("origin"))
        m1 = {k: scrape(u) for k, u in scr.items()}
        res["wrk"] = r
        secs = r["duration_us"] / 1e6
        res["rate"] = r["good"] / secs if secs > 0 else None
        res["p50_ms"], res["p99_ms"] = r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000
        res["server_cpu_pct"], res["load_cpu_pct"] = spct, lpct
        if origin_cpu0 is not None and origin_cpu1 is not None:
            res["origin_cpu_pct"] = 100 * (origin_cpu1 - origin_cpu0) / max(secs, 1e-9)
        if r["server_cpu_s"] is not None and r["good"]:
            res["server_cpu_us_per_read"] = 1e6 * r["server_cpu_s"] / r["good"]
        if "edge" in m1:
            e0, e1 = m0["edge"], m1["edge"]
            res["edge_upstream_during_run"] = msum(e1, "ds_edge_upstream_requests_total") - msum(
                e0, "ds_edge_upstream_requests_total"
            )
            res["edge_cache_hits_during_run"] = msum(e1, "ds_edge_cache_hits_total") - msum(
                e0, "ds_edge_cache_hits_total"
            )
            if res["edge_upstream_during_run"]:
                res["problems"].append(f"{res['edge_upstream_during_run']:.0f} upstream requests during the run")
        if r["bad_status"] or r["bad_size"]:
            res["problems"].append(f"{r['bad_status']} non-200 and {r['bad_size']} wrong-size responses (not counted)")
        errs = co._socket_errors(r)
        if errs:
            res["problems"].append(
                f"socket errors: connect {r['err_connect']}, read {r['err_read']}, "
                f"write {r['err_write']}, timeout {r['err_timeout']}"
            )
    except Exception as exc:
        res["ok"] = False
        res["problems"].append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def live_case(system, ctx: Ctx, mode: str) -> dict:
    """Long-poll or SSE fan-out with bench/live_client.py; RSS sampled for the SSE memory figure."""
    sse = mode == "sse"
    readers = ctx.sse_readers if sse else ctx.lp_readers
    appends = ctx.sse_events if sse else ctx.lp_appends
    res: dict = {"case": mode, "ok": True, "problems": [], "readers": readers}
    path = f"/v1/stream/bench-{system.key}-{mode}-{uuid.uuid4().hex[:8]}"
    http_ = co.Http(system.url)
    tag = f"{system.key}-{mode}"
    try:
        tail = co.create_stream(http_, path, co.JSON_CT)
        http_.close()
        max_write = max(30.0, appends * ctx.interval * 6)
        drain = 30.0  # ends as soon as every reader has everything; late deliveries are not "missed"
        settle = 1.0 + readers / 2500
        connect_timeout = 60.0 + readers / 50
        cmd = [
            *ctx.pinning.load_prefix(),
            sys.executable,
            str(BENCH_DIR / "live_client.py"),
            "--mode",
            "sse" if sse else "long-poll",
            "--url",
            system.url,
            "--path",
            path,
            "--offset",
            tail,
            "--readers",
            str(readers),
            "--appends",
            str(appends),
            "--interval",
            str(ctx.interval),
            "--settle",
            f"{settle:.1f}",
            "--drain",
            str(drain),
            "--max-write-s",
            str(max_write),
            "--connect-timeout",
            str(connect_timeout),
        ]
        res["native_readers"] = sse and ctx.sse_client == "native"
        if res["native_readers"]:
            cmd.append("--native-readers")
        if sse and system.key == "ours" and ctx.sse_writer == "origin":
            cmd += ["--write-url", system.origin_url]
        res["writer_via"] = "origin" if "--write-url" in cmd else ("edge" if system.key == "ours" else "node")
        for name, url in system.scrapes().items():
            cmd += ["--scrape", f"{name}={url}"]
        if "origin" in system.scrapes():
            cmd += ["--written-scrape", "origin"]
        for name, pid in system.pids().items():
            cmd += ["--watch-pid", f"{name}={pid}"]
        main_pid = system.pid
        rss_before = proc_kib(main_pid)
        metrics_before = {k: scrape(u) for k, u in system.scrapes().items()}
        t0 = time.monotonic()
        limit = 2 * connect_timeout + settle + max_write + 15 + drain + 60 + 30 + 60
        with RssSampler(main_pid) as sampler:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        (ctx.out_dir / f"{tag}.client.txt").write_text(
            " ".join(cmd) + "\n\n" + proc.stdout + "\n--- stderr ---\n" + proc.stderr
        )
        match = re.search(r"^LIVE_RESULT (\{.*\})$", proc.stdout, re.M)
        if proc.returncode != 0 or not match:
            raise RuntimeError(f"live client failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        r = json.loads(match.group(1))
        res["client"] = r
        res["client_wall_s"] = wall
        ph = r["phases"]
        ready, written, drained, closed = ph["ready"], ph["written"], ph["drained"], ph["closed"]
        lat = r["latency_ms"]
        res["p50_ms"], res["p99_ms"] = lat.get("p50"), lat.get("p99")
        # server CPU while writing (ready -> drained), per process
        span = max(drained["t"] - ready["t"], 1e-9)
        res["cpu_pct"] = {}
        for name in system.pids():
            a, b = ready["pids"].get(name, {}), drained["pids"].get(name, {})
            if "cpu_s" in a and "cpu_s" in b:
                res["cpu_pct"][name] = 100 * (b["cpu_s"] - a["cpu_s"]) / span
        res["client_cpu_pct"] = r["client_cpu_pct_while_writing"]
        main_name = "edge" if system.key == "ours" else "node"
        main_ready = ready["pids"].get(main_name, {})
        main_drained = drained["pids"].get(main_name, {})
        main_closed = closed["pids"].get(main_name, {})
        res["rss_kib"] = {
            "before": rss_before,
            "ready": main_ready.get("VmRSS_kib"),
            "peak_while_connected": sampler.peak(ready["t"], drained["t"]),
            "drained": main_drained.get("VmRSS_kib"),
            "hwm": main_drained.get("VmHWM_kib"),
            "after_close": main_closed.get("VmRSS_kib"),
        }
        res["fds"] = {"ready": main_ready.get("fds"), "closed": main_closed.get("fds")}
        with_clients = [
            v for v in (res["rss_kib"]["ready"], res["rss_kib"]["peak_while_connected"], res["rss_kib"]["drained"]) if v
        ]
        if rss_before and with_clients and readers:
            res["bytes_per_client"] = (max(with_clients) - rss_before) * 1024 / readers
            if res["rss_kib"]["ready"]:
                res["bytes_per_client_at_ready"] = (res["rss_kib"]["ready"] - rss_before) * 1024 / readers
        if system.key == "ours":
            o0, ow = ready["metrics"].get("origin", {}), written["metrics"].get("origin", {})
            o1 = drained["metrics"].get("origin", {})
            e0, e1 = ready["metrics"].get("edge", {}), drained["metrics"].get("edge", {})
            e_closed = closed["metrics"].get("edge", {})

            def gets(m):
                return msum(m, "ds_origin_http_requests_total", method="GET", route="stream")

            # From just before the first append to just after the last ack: the origin answers a
            # parked long-poll as it commits an append, so every poll an append caused is counted,
            # and none of the polls that time out while the last deliveries drain is.
            res["origin_gets_while_writing"] = gets(ow) - gets(o0)
            res["origin_gets_until_drained"] = gets(o1) - gets(o0)
            res["origin_get_statuses_while_writing"] = {
                k.split('status="', 1)[1].split('"', 1)[0]: v - o0.get(k, 0.0)
                for k, v in ow.items()
                if k.startswith("ds_origin_http_requests_total{")
                and 'method="GET"' in k
                and 'route="stream"' in k
                and v - o0.get(k, 0.0)
            }
            stored = r["appends_stored"]
            res["upstream_per_append"] = res["origin_gets_while_writing"] / stored if stored else None
            res["edge_upstream_while_writing"] = {
                kind: msum(e1, "ds_edge_upstream_requests_total", kind=kind)
                - msum(e0, "ds_edge_upstream_requests_total", kind=kind)
                for kind in ("long_poll", "catch_up", "sse")
            }
            res["edge_long_poll_waiters_at_ready"] = msum(e0, "ds_edge_long_poll_waiters")
            res["edge_sse_clients_at_ready"] = msum(e0, "ds_edge_live_clients", mode="sse")
            res["edge_after_close"] = {
                "long_poll_waiters": msum(e_closed, "ds_edge_long_poll_waiters"),
                "sse_clients": msum(e_closed, "ds_edge_live_clients", mode="sse"),
            }
            res["edge_slow_disconnects"] = msum(e_closed, "ds_edge_slow_client_disconnects_total") - msum(
                metrics_before.get("edge"), "ds_edge_slow_client_disconnects_total"
            )
            res["edge_upstream_errors"] = msum(e_closed, "ds_edge_upstream_errors_total") - msum(
                metrics_before.get("edge"), "ds_edge_upstream_errors_total"
            )
            res["edge_5xx"] = sum(
                v for k, v in e_closed.items() if k.startswith("ds_edge_http_requests_total{") and 'status="5' in k
            ) - sum(
                v
                for k, v in (metrics_before.get("edge") or {}).items()
                if k.startswith("ds_edge_http_requests_total{") and 'status="5' in k
            )
            if res["edge_5xx"]:
                res["problems"].append(f"the edge answered {res['edge_5xx']:.0f} requests with 5xx")
            if sse and res["edge_after_close"]["sse_clients"]:
                res["problems"].append(
                    f"{res['edge_after_close']['sse_clients']:.0f} SSE handlers still open at the edge "
                    f"{ctx.after_close:.0f} s after every client closed (and one more event was appended)"
                )
            if not sse and res["edge_after_close"]["long_poll_waiters"]:
                res["problems"].append(
                    f"{res['edge_after_close']['long_poll_waiters']:.0f} long-poll waiters left at the edge after "
                    "every client closed"
                )
            if res["edge_slow_disconnects"]:
                res["problems"].append(f"the edge cut off {res['edge_slow_disconnects']:.0f} clients as too slow")
            if res["edge_upstream_errors"]:
                res["problems"].append(f"{res['edge_upstream_errors']:.0f} upstream errors at the edge")
        _live_problems(res, r, sse, max_write)
        if res["client_cpu_pct"] is not None and res["client_cpu_pct"] >= 90:
            res["problems"].append(
                f"the client process used {res['client_cpu_pct']:.0f}% of its core while the writer ran: it may "
                "have fallen behind, so latencies are upper bounds (see multi-message reads)"
            )
    except Exception as exc:
        res["ok"] = False
        res["problems"].append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def _live_problems(res: dict, r: dict, sse: bool, max_write: float) -> None:
    p = res["problems"]
    if r["readers_ready"] < r["readers"]:
        p.append(f"only {r['readers_ready']} of {r['readers']} readers were ready when writing started")
    if r["missed"]:
        p.append(
            f"{r['missed']:,} of {r['expected_deliveries']:,} deliveries missed ({r['readers_incomplete']} readers "
            f"incomplete, at most {r['max_missed_per_reader']} per reader); e.g. {r['stuck_examples'][:2]}"
        )
    if r["duplicates"]:
        p.append(f"{r['duplicates']} duplicate deliveries ({r['readers_with_duplicates']} readers)")
    if r["status_errors"]:
        p.append(f"reader error statuses: {r['status_errors']}")
    if r["writer_errors"]:
        p.append(f"writer errors: {r['writer_errors']}")
    if r["writer_gave_up"]:
        p.append(f"writer stopped after {r['appends_sent']} of {r['appends']} appends ({max_write:.0f} s cap)")
    if r["appends_stored"] != r["appends_sent"]:
        p.append(f"{r['appends_sent']} appends sent, {r['appends_stored']} in the stream")
    reconnects = r["reconnects"] - (r["sse_responses_ended"] if sse else 0)
    if reconnects > 0 or r["connect_failures"]:
        p.append(f"{reconnects} broken connections (reconnected), {r['connect_failures']} connect failures")
    if r["bad_bodies"] or r["foreign_messages"] or r["bad_responses"]:
        p.append(
            f"{r['bad_bodies']} unparsable bodies, {r['foreign_messages']} unexpected messages, "
            f"{r['bad_responses']} malformed responses"
        )
    if r["never_stored_but_received"]:
        p.append(f"{r['never_stored_but_received']} deliveries of messages that are not in the stream")


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def run_system(kind: str, tag: str, ctx: Ctx, cases: list[str]) -> dict:
    system = OursSystem(tag, ctx) if kind == "ours" else NodeSystem(tag, ctx)
    out: dict = {"key": kind, "tag": tag, "cases": {}, "problems": []}
    log(f"starting {LABELS[kind]} ({tag})")
    try:
        system.start()
    except Exception as exc:
        out["problems"].append(f"could not start: {exc}")
        log(f"  could not start: {exc}")
        return out
    try:
        for case in cases:
            if not system.alive():
                out["problems"].append(f"server process gone before the {case} case")
                break
            log(f"  {case} ...")
            if case == "catchup":
                res = catchup_case(system, ctx)
                summary = f"{res.get('rate') or 0:,.0f} reads/s"
            else:
                res = live_case(system, ctx, "sse" if case == "sse" else "long-poll")
                summary = f"p50 {co.fmt_ms(res.get('p50_ms'))} ms, p99 {co.fmt_ms(res.get('p99_ms'))} ms"
                if res.get("bytes_per_client") is not None and case == "sse":
                    summary += f", {res['bytes_per_client'] / 1024:.1f} KiB/client"
                if res.get("upstream_per_append") is not None and case == "longpoll":
                    summary += f", {res['upstream_per_append']:.2f} origin GETs/append"
            out["cases"][case] = res
            flag = f"  PROBLEMS: {'; '.join(res['problems'])}" if res["problems"] else ""
            log(f"  {case}: {summary}{flag}")
        if not system.alive():
            out["problems"].append("a server process died during the run")
        peak = {name: proc_kib(pid, "VmHWM") for name, pid in system.pids().items()}
        out["peak_rss_mib"] = {k: v / 1024 for k, v in peak.items() if v}
    finally:
        system.stop()
        out["problems"] += system.problems
        log(f"stopped {LABELS[kind]} ({tag})")
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _get(results: dict, kind: str, case: str) -> dict | None:
    for run in results["runs"]:
        if run["key"] == kind and case in run["cases"]:
            return run["cases"][case]
    return None


def report(results: dict, ctx: Ctx, args, elapsed_s: float) -> str:
    m = results["machine"]
    lines: list[str] = []
    add = lines.append
    mode = "quick smoke run" if args.quick else "full run"
    add("## Edge benchmark: plugin-streams edge (origin behind it) vs Node reference (`@durable-streams/server` 0.3.7)")
    add("")
    add(
        f"*{mode}; {m['date']}; total {elapsed_s / 60:.1f} min. Catch-up {ctx.duration} s per case "
        f"({ctx.warmup} s unmeasured warm-up), c=16; long-poll {ctx.lp_readers:,} readers x {ctx.lp_appends} "
        f"appends; SSE {ctx.sse_readers:,} readers x {ctx.sse_events} events; one append every "
        f"{ctx.interval * 1000:.0f} ms.*"
    )
    add("")
    add(
        f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_gib']} GiB RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, Node {m['node']}, {m['wrk']}. Origin data on {m['data_fs']} "
        f"(`--fsync {ctx.origin_fsync}`). Load average (1 min) at start {m['loadavg_start'][0]:.2f}, "
        f"at end {results['loadavg_end'][0]:.2f}. Pinning: {ctx.pinning.note}."
    )
    add("")
    add(
        "Ours = `plugin-streams origin` + one `plugin-streams edge --origin <it>` process, both on the "
        "server core; readers talk to the edge only, and so does the long-poll writer"
        + (
            "; the SSE writer appends to the origin directly, so the event rate does not depend on the edge. "
            if ctx.sse_writer == "origin"
            else "; the SSE writer appends through the edge too. "
        )
        + "Node = the reference server in memory, on the server core; readers and writer talk to it directly. "
        f"Long-poll timeout {LONG_POLL_TIMEOUT_S} s everywhere, compression off on Node. The writer waits for "
        "each acknowledgement, so a server that acknowledges slowly gets fewer appends (see mean interval)."
    )
    add("")

    cu = {k: _get(results, k, "catchup") for k in ("ours", "node")}
    lp = {k: _get(results, k, "longpoll") for k in ("ours", "node")}
    ss = {k: _get(results, k, "sse") for k in ("ours", "node")}

    def ok(c):
        return c is not None and c.get("ok")

    verdicts: list[tuple[str, str]] = []
    rows: list[list[str]] = []

    def verdict(name: str, met: bool | None) -> str:
        text = "n/a" if met is None else ("yes" if met else "**no**")
        verdicts.append((name, text))
        return text

    # 1. catch-up
    if "catchup" in ctx.cases:
        ro = cu["ours"].get("rate") if ok(cu["ours"]) else None
        rn = cu["node"].get("rate") if ok(cu["node"]) else None
        r = co.ratio(ro, rn)
        rows.append(
            [
                "1. Catch-up reads/s of one complete 64 KiB chunk, c=16 (ours: edge cache warm)",
                _rate_cell(cu["ours"]),
                _rate_cell(cu["node"]),
                co.fmt_ratio(r),
                f"≥ {TARGET_CATCHUP_RATIO:g}x",
                verdict("catch-up ≥ 2x", None if r is None else r >= TARGET_CATCHUP_RATIO),
            ]
        )
    # 2. long-poll
    if "longpoll" in ctx.cases:
        for label, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
            vo = lp["ours"].get(key) if ok(lp["ours"]) else None
            vn = lp["node"].get(key) if ok(lp["node"]) else None
            r = co.ratio(vo, vn)
            rows.append(
                [
                    f"2. Long-poll delivery {label} (ms), {ctx.lp_readers:,} readers on one stream",
                    _ms_cell(lp["ours"], key),
                    _ms_cell(lp["node"], key),
                    co.fmt_ratio(r),
                    "ours lower",
                    verdict(f"long-poll {label} lower", None if r is None else vo < vn),
                ]
            )
        upa = lp["ours"].get("upstream_per_append") if ok(lp["ours"]) else None
        cell = "-"
        if upa is not None:
            cell = (
                f"{upa:.3f} ({lp['ours']['origin_gets_while_writing']:.0f} GETs / "
                f"{lp['ours']['client']['appends_stored']} appends)"
            )
        rows.append(
            [
                "2. Upstream requests per append at the origin (origin GETs ÷ appends, one edge)",
                cell,
                "n/a (no edge)",
                "-",
                f"≤ {TARGET_UPSTREAM_PER_APPEND}",
                verdict("upstream ≤ 1.05/append", None if upa is None else upa <= TARGET_UPSTREAM_PER_APPEND),
            ]
        )
    # 3. SSE
    if "sse" in ctx.cases:
        so, sn = ss["ours"], ss["node"]
        p99 = so.get("p99_ms") if ok(so) else None
        rows.append(
            [
                f"3. SSE delivery p99 (ms), {ctx.sse_readers:,} readers, {1 / ctx.interval:.0f} events/s",
                _ms_cell(so, "p99_ms"),
                _ms_cell(sn, "p99_ms") if sn else "not run",
                co.fmt_ratio(co.ratio(p99, sn.get("p99_ms") if ok(sn) else None)),
                f"≤ {TARGET_SSE_P99_MS:.0f} ms",
                verdict("SSE p99 ≤ 250 ms", None if p99 is None else p99 <= TARGET_SSE_P99_MS),
            ]
        )
        bpc = so.get("bytes_per_client") if ok(so) else None
        rows.append(
            [
                "3. Memory per SSE client: (VmRSS with clients - before) ÷ clients",
                _kb_cell(so),
                _kb_cell(sn) if sn else "not run",
                "-",
                "≤ 20 KB (20,000 B)",
                verdict("SSE ≤ 20 KB/client", None if bpc is None else bpc <= TARGET_SSE_BYTES_PER_CLIENT),
            ]
        )
        md = None
        if ok(so):
            c = so["client"]
            md = (c["max_missed_per_reader"], c["max_duplicates_per_reader"])
        rows.append(
            [
                "3. SSE events missed / duplicated per client (max over clients; totals)",
                _md_cell(so),
                _md_cell(sn) if sn else "not run",
                "-",
                "0 / 0",
                verdict("SSE 0 missed / 0 dup", None if md is None else md == (0, 0)),
            ]
        )
    add("### Targets")
    add("")
    head = ["Figure", LABELS["ours"], LABELS["node"], "ours / Node", "Target", "Met?"]
    add("| " + " | ".join(head) + " |")
    add("|---" * len(head) + "|")
    for row in rows:
        add("| " + " | ".join(row) + " |")
    add("")
    judged = [(n, v) for n, v in verdicts if v != "n/a"]
    if judged:
        met = [n for n, v in judged if v == "yes"]
        missed = [n for n, v in judged if v != "yes"]
        add(
            f"Targets met: {len(met)} of {len(judged)}"
            + (f"; not met: {', '.join(missed)}." if missed else ".")
            + (" (Smoke run: indicative only.)" if args.quick else "")
        )
        add("")

    # details
    if "catchup" in ctx.cases:
        add("### Catch-up details")
        add("")
        add(f"| Figure | {LABELS['ours']} | {LABELS['node']} |")
        add("|---|---|---|")
        _row2(add, "reads/s · p50 / p99 (ms)", cu, lambda c: _rate_cell(c))
        _row2(add, "read from", cu, lambda c: c.get("read_from", "-"))
        _row2(add, "Cache-Control of the response", cu, lambda c: f"`{c.get('cache_control') or '-'}`")
        _row2(
            add,
            "warm check (2nd GET via the edge: cache hits / upstream requests)",
            cu,
            lambda c: (
                f"{c['warm_check']['cache_hits']:.0f} / {c['warm_check']['upstream']:.0f}" if "warm_check" in c else "-"
            ),
        )
        _row2(
            add,
            "edge upstream requests during the run; cache hits",
            cu,
            lambda c: (
                f"{c['edge_upstream_during_run']:.0f}; {c['edge_cache_hits_during_run']:,.0f}"
                if "edge_upstream_during_run" in c
                else "-"
            ),
        )
        _row2(
            add,
            "server CPU % (edge; origin) · µs per read · wrk CPU %",
            cu,
            lambda c: (
                f"{c.get('server_cpu_pct') or 0:.0f}%"
                + (f"; {c['origin_cpu_pct']:.0f}%" if "origin_cpu_pct" in c else "")
                + f" · {c.get('server_cpu_us_per_read') or 0:,.0f} µs · {c.get('load_cpu_pct') or 0:.0f}%"
            ),
        )
        add("")
    for case, title, d in (
        ("longpoll", f"Long-poll details: {ctx.lp_readers:,} readers, {ctx.lp_appends} appends", lp),
        ("sse", f"SSE details: {ctx.sse_readers:,} readers, {ctx.sse_events} events", ss),
    ):
        if case not in ctx.cases:
            continue
        add(f"### {title}")
        add("")
        add(f"| Figure | {LABELS['ours']} | {LABELS['node']} |")
        add("|---|---|---|")

        def lat(c, key="latency_ms"):
            s = c["client"][key]
            return " / ".join(co.fmt_ms(s.get(p)) for p in ("p50", "p90", "p99", "p999", "max"))

        _row2(add, "delivery latency p50 / p90 / p99 / p99.9 / max (ms), kernel timestamps", d, lat)
        _row2(add, "client-side latency, same percentiles (ms)", d, lambda c: lat(c, "latency_user_ms"))
        _row2(
            add,
            "readers ready; seconds to connect / to be ready",
            d,
            lambda c: (
                f"{c['client']['readers_ready']:,} / {c['client']['readers']:,}; "
                f"{c['client']['connect_s']:.1f} / {c['client']['subscribe_s']:.1f} s"
            ),
        )
        _row2(
            add,
            "deliveries missed / expected; duplicates; readers incomplete",
            d,
            lambda c: (
                f"{c['client']['missed']:,} / {c['client']['expected_deliveries']:,}; "
                f"{c['client']['duplicates']:,}; {c['client']['readers_incomplete']:,}"
            ),
        )
        _row2(
            add,
            "responses 200 / 204; error statuses; broken connections",
            d,
            lambda c, case=case: (
                f"{c['client']['responses_200']:,} / {c['client']['responses_204']:,}; "
                f"{c['client']['status_errors'] or 0}; "
                f"{c['client']['reconnects'] - (c['client']['sse_responses_ended'] if case == 'sse' else 0)}"
            ),
        )
        if case == "sse":
            _row2(
                add,
                "SSE responses ended by the server (resumed); keep-alives",
                d,
                lambda c: f"{c['client']['sse_responses_ended']:,}; {c['client']['keepalives']:,}",
            )
        _row2(
            add,
            "reads carrying > 1 message / all reads",
            d,
            lambda c: f"{c['client']['multi_message_recvs']:,} / {c['client']['recvs']:,}",
        )
        _row2(
            add,
            "appends sent / stored; writer ack p50 / p99 (ms); mean interval",
            d,
            lambda c: (
                f"{c['client']['appends_sent']} / {c['client']['appends_stored']}; "
                f"{co.fmt_ms(c['client']['writer_append_ms'].get('p50'))} / "
                f"{co.fmt_ms(c['client']['writer_append_ms'].get('p99'))}; "
                f"{(c['client']['write_interval_mean_s'] or 0) * 1000:.0f} ms"
            ),
        )
        if case == "longpoll":
            _row2(
                add,
                "origin GETs while writing (by status); until drained; edge upstream long-poll / catch-up to drained",
                d,
                lambda c: (
                    f"{c['origin_gets_while_writing']:.0f} ("
                    + ", ".join(f"{k}: {v:.0f}" for k, v in c["origin_get_statuses_while_writing"].items())
                    + "); "
                    + f"{c['origin_gets_until_drained']:.0f}; "
                    f"{c['edge_upstream_while_writing']['long_poll']:.0f} / "
                    f"{c['edge_upstream_while_writing']['catch_up']:.0f}"
                    if "origin_gets_while_writing" in c
                    else "-"
                ),
            )
            _row2(
                add,
                "long-poll waiters at the edge when writing started; after the clients left",
                d,
                lambda c: (
                    f"{c['edge_long_poll_waiters_at_ready']:.0f}; {c['edge_after_close']['long_poll_waiters']:.0f}"
                    if "edge_after_close" in c
                    else "-"
                ),
            )
        else:
            _row2(
                add,
                "edge VmRSS before / all subscribed / peak while connected / after close (MiB)",
                d,
                lambda c: " / ".join(
                    f"{v / 1024:.0f}" if v else "-"
                    for v in (
                        c["rss_kib"]["before"],
                        c["rss_kib"]["ready"],
                        c["rss_kib"]["peak_while_connected"],
                        c["rss_kib"]["after_close"],
                    )
                ),
            )
            _row2(
                add,
                "bytes per client: peak while connected; when all were subscribed",
                d,
                lambda c: (
                    f"{c['bytes_per_client']:,.0f} B; {c.get('bytes_per_client_at_ready', 0):,.0f} B"
                    if c.get("bytes_per_client") is not None
                    else "-"
                ),
            )
            _row2(
                add,
                "SSE clients at the edge when writing started; after the clients left; upstream SSE requests",
                d,
                lambda c: (
                    f"{c['edge_sse_clients_at_ready']:.0f}; {c['edge_after_close']['sse_clients']:.0f}; "
                    f"{c['edge_upstream_while_writing']['sse']:.0f}"
                    if "edge_after_close" in c
                    else "-"
                ),
            )
        _row2(
            add,
            "CPU % while writing: server processes; client",
            d,
            lambda c: (
                "; ".join(f"{k} {v:.0f}%" for k, v in c["cpu_pct"].items())
                + f"; client {c['client_cpu_pct']:.0f}%"
                + (" (C readers + Python writer)" if c.get("native_readers") else "")
            ),
        )
        add("")

    problems = []
    for run in results["runs"]:
        label = f"{LABELS[run['key']]} ({run['tag']})"
        for p in run["problems"]:
            problems.append(f"{label}: {p}")
        for case, c in run["cases"].items():
            for p in c.get("problems", []):
                problems.append(f"{label}, {case}: {p}")
    add("**Problems observed**" if problems else "**Problems observed:** none.")
    add("")
    for p in problems:
        add(f"- {p}")
    if problems:
        add("")
    return "\n".join(lines)


def _row2(add, title: str, d: dict, fn) -> None:
    vals = []
    for k in ("ours", "node"):
        c = d.get(k)
        if c is None:
            vals.append("not run")
        elif not c.get("ok"):
            vals.append("failed")
        else:
            try:
                vals.append(fn(c))
            except (KeyError, TypeError):
                vals.append("-")
    add(f"| {title} | " + " | ".join(vals) + " |")


def _rate_cell(c: dict | None) -> str:
    if c is None:
        return "not run"
    if not c.get("ok"):
        return "failed"
    return f"{co.fmt_rate(c.get('rate'))} · {co.fmt_ms(c.get('p50_ms'))} / {co.fmt_ms(c.get('p99_ms'))} ms"


def _ms_cell(c: dict | None, key: str) -> str:
    if c is None:
        return "not run"
    if not c.get("ok"):
        return "failed"
    return co.fmt_ms(c.get(key))


def _kb_cell(c: dict | None) -> str:
    if c is None:
        return "not run"
    if not c.get("ok") or c.get("bytes_per_client") is None:
        return "failed" if not c.get("ok") else "-"
    rss = c["rss_kib"]
    peak = max(v for v in (rss["ready"], rss["peak_while_connected"], rss["drained"]) if v)
    return (
        f"{c['bytes_per_client']:,.0f} B ({rss['before'] / 1024:.0f} → {peak / 1024:.0f} MiB "
        f"for {c['readers']:,} clients)"
    )


def _md_cell(c: dict | None) -> str:
    if c is None:
        return "not run"
    if not c.get("ok"):
        return "failed"
    r = c["client"]
    return (
        f"{r['max_missed_per_reader']} / {r['max_duplicates_per_reader']} "
        f"(totals {r['missed']:,} / {r['duplicates']:,} of {r['expected_deliveries']:,})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Compare the plugin-streams edge (origin behind it) with the Node reference (see bench/README.md)."
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 3 s catch-up, 500 long-poll / 1,000 SSE readers"
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--duration", type=int, default=None, help="seconds of measured catch-up load (10; quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured catch-up seconds first (2; quick 1)")
    parser.add_argument("--lp-readers", type=int, default=None, help="long-poll readers (5000; quick 500)")
    parser.add_argument("--lp-appends", type=int, default=None, help="long-poll appends (100; quick 20)")
    parser.add_argument("--sse-readers", type=int, default=None, help="SSE readers (10000; quick 1000)")
    parser.add_argument("--sse-events", type=int, default=None, help="SSE events = appends (300; quick 50)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between appends (0.1 = 10 events/s)")
    parser.add_argument("--sse-node", action="store_true", help="also run the SSE case on Node (no target)")
    parser.add_argument(
        "--sse-writer",
        choices=("origin", "edge"),
        default="origin",
        help="ours, SSE case: the writer appends to the origin (default; the rate stays 10/s) or through the edge",
    )
    parser.add_argument(
        "--sse-client",
        choices=("native", "python"),
        default="native" if shutil.which("gcc") else "python",
        help="SSE readers: bench/sse_readers.c (default, with gcc) or live_client.py's own Python readers",
    )
    parser.add_argument("--origin-fsync", choices=("always", "never"), default="always", help="our origin's --fsync")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators with taskset")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU for the servers (default: the last one)")
    parser.add_argument("--load-cpu", type=int, default=None, help="CPU for the load generators (default: the first)")
    parser.add_argument("--data-root", default=None, help="where the origin's data dir goes (default: temp dir)")
    parser.add_argument("--out", default=None, help="raw output directory (default bench/results/<timestamp>-edge)")
    args = parser.parse_args()

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or any(c not in CASES for c in cases):
        parser.error(f"--cases: choose from {CASES}")
    q = args.quick
    duration = args.duration if args.duration is not None else (3 if q else 10)
    warmup = args.warmup if args.warmup is not None else (1 if q else 2)
    lp_readers = args.lp_readers if args.lp_readers is not None else (500 if q else 5000)
    lp_appends = args.lp_appends if args.lp_appends is not None else (20 if q else 100)
    sse_readers = args.sse_readers if args.sse_readers is not None else (1000 if q else 10000)
    sse_events = args.sse_events if args.sse_events is not None else (50 if q else 300)
    if not (1 <= duration <= 600 and 0 <= warmup <= 60 and 0.01 <= args.interval <= 5):
        parser.error("--duration 1..600, --warmup 0..60, --interval 0.01..5")
    if not (1 <= lp_readers <= 15000 and 1 <= sse_readers <= 15000 and 1 <= lp_appends <= 10000):
        parser.error("readers must be 1..15000, appends 1..10000")
    if not 1 <= sse_events <= 10000:
        parser.error("--sse-events 1..10000")
    if "catchup" in cases and shutil.which("wrk") is None:
        print("wrk is not installed: apt-get update && apt-get install -y wrk", file=sys.stderr)
        return 2

    # Servers and clients inherit this: the edge and the client each hold one fd per reader.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(lp_readers, sse_readers) + 1024
    want = min(hard, max(soft, 2 * need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        log(f"warning: open-file limit {want} is below {need}: raise the hard limit (ulimit -Hn)")
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        somaxconn = None

    pinning = co.choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})
    data_root = Path(args.data_root or tempfile.gettempdir()).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out) if args.out else BENCH_DIR / "results" / (time.strftime("%Y%m%d-%H%M%S") + "-edge")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        cases=cases,
        duration=duration,
        warmup=warmup,
        lp_readers=lp_readers,
        lp_appends=lp_appends,
        sse_readers=sse_readers,
        sse_events=sse_events,
        interval=args.interval,
        origin_fsync=args.origin_fsync,
        sse_writer=args.sse_writer,
        sse_client=args.sse_client,
        pinning=pinning,
        out_dir=out_dir,
        data_root=data_root,
        after_close=2.0,
    )
    machine = co.machine_info(data_root)
    machine["somaxconn"] = somaxconn
    machine["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
    log(
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), Linux {machine['kernel']}, Python {machine['python']}, "
        f"Node {machine['node']}, {machine['wrk']}; load average {machine['loadavg_start'][0]:.2f}; {pinning.note}"
    )
    lo = hi = 0.0
    if "catchup" in cases:
        lo += 2 * (duration + warmup + 5)
        hi += 2 * (duration + warmup + 10)
    if "longpoll" in cases:  # the writer waits for acks: at most max(30, 6 x appends x interval) s
        base = lp_readers / 1000 + 1 + lp_readers / 2500 + 10
        lo += 2 * (base + lp_appends * args.interval)
        hi += 2 * (base + 5 + max(30.0, 6 * lp_appends * args.interval))
    if "sse" in cases:
        base = sse_readers / 700 + 1 + sse_readers / 2500 + sse_events * args.interval + 10
        lo += (1 + args.sse_node) * base
        hi += (1 + args.sse_node) * (base + 30)
    log(f"cases {cases}; estimated {lo / 60:.1f} to {hi / 60:.1f} min; raw output in {out_dir}")

    t0 = time.monotonic()
    runs = []
    first = [c for c in cases if c in ("catchup", "longpoll")]
    if first:
        runs.append(run_system("ours", "a", ctx, first))
        runs.append(run_system("node", "a", ctx, first))
    if "sse" in cases:  # a fresh edge: its RSS before the clients is the baseline
        runs.append(run_system("ours", "sse", ctx, ["sse"]))
        if args.sse_node:
            runs.append(run_system("node", "sse", ctx, ["sse"]))
    elapsed = time.monotonic() - t0
    results = {"machine": machine, "args": vars(args), "runs": runs, "loadavg_end": os.getloadavg()}
    co.save_report(out_dir, report(results, ctx, args, elapsed), results, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
