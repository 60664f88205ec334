#!/usr/bin/env python3
"""Benchmark the KV store of issue #14: atomic commits per second, and watch delivery latency.

One run, one machine, one server at a time (never two at once), servers pinned to one core and
the load generators to the other (as bench/compare_origin.py does):

1. commits: KV atomic commits (``POST /kv/api/v1/<db>/atomic``: a check of the connection's own
   key, a set of it to a ~100-byte JSON value, a sum on a counter all connections share) against
   ``plugin-streams origin`` (file engine, ``--fsync always``) at concurrency 1 and 64 (wrk,
   closed loop, bench/lua/kv_atomic.lua: every answer verified, ``"ok":true`` and a versionstamp
   greater than the connection's previous one; the shared counter read back must equal the
   verified commits). Reference points in the same run, with the same wrk harness and
   concurrency: 100-byte JSON appends to a stream on our origin (what the KV layer adds), and
   to the Node reference server ``@durable-streams/server`` 0.3.7, in memory and with
   ``dataDir`` (Node has no KV: an append is its closest durable-ish operation). Reported:
   operations/s, latency p50/p99, and ratios.
2. watch: ``--watchers`` (1,000) SSE watchers of one database's change stream through ONE edge
   (``plugin-streams edge`` in front of a fresh origin), from the current tail, while one writer
   commits ``--rate`` (20) commits/s for ``--watch-seconds`` (15). Latency = receive time - the
   writer's send time of the commit (recorded in the committed value). Every watcher must get
   every commit once, in order (bench/kv_watch.py has the details).

Prints a markdown report on stdout (progress on stderr); raw wrk output, server logs and
results.json go to ``--out`` (default bench/results/<time>-kv/). See bench/README.md.

    .venv/bin/python bench/kv.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import compare_edge as ce  # noqa: E402  (PluginProc: origin / edge processes on the server core)
import compare_origin as co  # noqa: E402  (wrk, Node reference server, appends, machine info, report cells)
import kv_watch  # noqa: E402  (the watch case)

KV_LUA = co.LUA_DIR / "kv_atomic.lua"
SYSTEMS = ("kv", "ours-appends", "node-memory", "node-datadir")
LABELS = {
    "kv": "KV atomic commit (check + set 100 B + sum), ours",
    "ours-appends": "stream append, 100 B JSON, ours",
    "node-memory": "stream append, 100 B JSON, Node 0.3.7 memory",
    "node-datadir": "stream append, 100 B JSON, Node 0.3.7 dataDir",
}
CASES = ("commits", "watch")
log = co.log


@dataclass
class Ctx:
    """What compare_origin's cases (duration, pinning, out_dir, warmup) and compare_edge's
    processes (data_root, out_dir, pinning, origin_fsync) read."""

    duration: int
    warmup: int
    concurrency: list[int]
    pinning: co.Pinning
    out_dir: Path
    data_root: Path
    origin_fsync: str


# --------------------------------------------------------------------------------------------
# Commits
# --------------------------------------------------------------------------------------------


def read_counter(url: str, db: str, run_id: str) -> int | None:
    """The shared counter of a commit case (a KvU64), or None if it was never written."""
    http = co.Http(url)
    try:
        key = quote(json.dumps(["bench", f"{run_id}-total"], separators=(",", ":")), safe="")
        status, _, body = http.request("GET", f"/kv/api/v1/{db}/keys?key={key}")
        if status != 200:
            raise RuntimeError(f"counter GET -> {status} {body[:200]!r}")
        value = json.loads(body)["value"]
        return None if value is None else int(value["$u64"])
    finally:
        http.close()


def kv_commit_case(server: co.OursServer, url: str, ctx: Ctx, conns: int, *, measured: bool = True) -> co.CaseResult:
    """wrk with bench/lua/kv_atomic.lua on a fresh database; every answer and the counter checked."""
    res = co.CaseResult(f"KV atomic, c={conns}", "append")
    run_id = uuid.uuid4().hex[:8]
    db = f"bench-c{conns}-{run_id}" if measured else f"warmup-{run_id}"
    slug = f"kv-c{conns}" if measured else "kv-warmup"
    try:
        r, spct, lpct = co.run_wrk(
            f"{url}/kv/api/v1/{db}/atomic",
            KV_LUA,
            [run_id],
            conns,
            ctx.duration if measured else ctx.warmup,
            ctx.pinning,
            server,
            ctx.out_dir / f"{slug}.wrk.txt",
        )
        res.raw = r
        secs = r["duration_us"] / 1e6
        res.rate = r["verified"] / secs if secs > 0 else None
        res.p50_ms, res.p99_ms = r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000
        res.server_cpu_pct, res.load_cpu_pct = spct, lpct
        if r["server_cpu_s"] is not None and r["requests"]:
            res.server_cpu_us_per_op = 1e6 * r["server_cpu_s"] / r["requests"]
        res.problems += _commit_problems(r)
        if server.alive():
            total = read_counter(url, db, run_id) or 0
            res.raw["counter"] = total
            # wrk stops with up to `conns` commits in flight: the server may have made those too.
            if not r["verified"] <= total <= r["s200"] + conns:
                res.problems.append(f"the shared counter is {total} but {r['verified']} commits were verified")
    except Exception as exc:  # a failed case must not hide the others
        res.ok = False
        res.problems.append(f"case failed: {exc}")
    return res


def _commit_problems(r: dict[str, Any]) -> list[str]:
    problems = []
    unverified = r["s200"] - r["verified"]
    if unverified:
        problems.append(
            f"{unverified} answers failed verification (not ok {r['not_ok']}, versionstamp not rising "
            f"{r['not_rising']}, no versionstamp {r['bad_body']})"
        )
    bad = r["requests"] - r["s200"]
    if bad:
        problems.append(f"{bad} non-200 answers (409 failed check {r['s409']}, 4xx {r['s4xx']}, 5xx {r['s5xx']})")
    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
    if errors:
        problems.append(f"{errors} socket errors")
    return problems


def bench_system(key: str, ctx: Ctx) -> dict[str, Any]:
    """One server: started, warmed up, every concurrency measured, stopped, its log scanned."""
    out: dict[str, Any] = {"key": key, "label": LABELS[key], "cases": {}, "problems": []}
    if key in ("kv", "ours-appends"):
        server: Any = co.OursServer(ctx.data_root, ctx.out_dir, ctx.pinning, ctx.origin_fsync)
        server.log_path = ctx.out_dir / f"origin-{key}.log"
    else:
        server = co.NodeServer(key == "node-datadir", ctx.data_root, ctx.out_dir, ctx.pinning)
    url = server.start()
    log(f"{LABELS[key]}: {url} (pid {server.pid})")
    try:
        if ctx.warmup > 0:
            if key == "kv":
                kv_commit_case(server, url, ctx, 16, measured=False)
            else:
                co.warmup(server, url, ctx)
        for conns in ctx.concurrency:
            log(f"  c={conns}: {ctx.duration} s")
            if key == "kv":
                case = kv_commit_case(server, url, ctx, conns)
            else:
                case = co.append_case(server, url, ctx, co.JSON_CT, False, conns)
            out["cases"][conns] = case.__dict__
            for problem in case.problems:
                log(f"    problem: {problem}")
    finally:
        out["problems"] += co.stop_and_check(server)
    return out


# --------------------------------------------------------------------------------------------
# Watch
# --------------------------------------------------------------------------------------------


def watch_system(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh origin and ONE edge (both on the server core); the watch case against them."""
    origin = ce.PluginProc("origin", "watch", ctx)  # type: ignore[arg-type]
    edge: ce.PluginProc | None = None
    try:
        origin_url = origin.start()
        edge = ce.PluginProc("edge", "watch", ctx, origin_url)  # type: ignore[arg-type]
        edge_url = edge.start()
        log(f"watch: origin {origin_url} (pid {origin.pid}), edge {edge_url} (pid {edge.pid})")
        plan = kv_watch.WatchPlan(
            origin_url=origin_url,
            edge_url=edge_url,
            db=f"watch-{uuid.uuid4().hex[:8]}",
            watchers=args.watchers,
            order_watchers=min(args.order_watchers, args.watchers),
            rate=args.rate,
            commits=max(1, round(args.rate * args.watch_seconds)),
            writer_url=origin_url if args.watch_writer == "origin" else edge_url,
            pids={"edge": edge.pid or 0, "origin": origin.pid or 0},
        )
        result = asyncio.run(kv_watch.run_watch(plan))
        result["plan"] = {k: v for k, v in plan.__dict__.items() if k != "pids"}
    finally:
        problems = []
        for proc in (edge, origin):
            if proc is not None:
                problems += co.stop_and_check(proc)
    result["problems"] += problems
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _case(results: dict[str, Any], key: str, conns: int) -> dict[str, Any] | None:
    system = results.get("commits", {}).get(key)
    return system["cases"].get(conns) if system else None


def _rate(case: dict[str, Any] | None) -> float | None:
    return case["rate"] if case and case["ok"] else None


def commits_report(results: dict[str, Any], ctx: Ctx) -> list[str]:
    cs = ctx.concurrency
    marks: dict[Any, Any] = {}
    lines = [
        "#### Commits and appends per second (closed loop, wrk, one connection per thread)",
        "",
        "Cells: **operations/s · p50 / p99 latency (ms)**. KV: only verified commits count "
        "(`ok:true`, versionstamp rising per key).",
        "",
        "| Operation | " + " | ".join(f"c={c}" for c in cs) + " |",
        "|---|" + "---|" * len(cs),
    ]
    for key in results.get("commits", {}):
        lines.append(f"| {LABELS[key]} | " + " | ".join(co.cell(_case(results, key, c), marks) for c in cs) + " |")
    lines += [
        "",
        "Ratios (operations/s): what is compared is a KV atomic commit on our origin (validated against the "
        "index, applied, appended to the database's change stream as one JSON event, acknowledged after "
        "fdatasync) against a plain 100-byte append to one stream. Node has no KV, so its append is the "
        "closest operation it has; Node memory is not durable, Node dataDir fsyncs every append.",
        "",
        "| Ratio | " + " | ".join(f"c={c}" for c in cs) + " |",
        "|---|" + "---|" * len(cs),
    ]
    for key, what in (
        ("ours-appends", "KV commit / our own stream append (the KV layer's cost)"),
        ("node-memory", "KV commit / Node memory append"),
        ("node-datadir", "KV commit / Node dataDir append"),
    ):
        if key in results.get("commits", {}):
            cells = [co.fmt_ratio(co.ratio(_rate(_case(results, "kv", c)), _rate(_case(results, key, c)))) for c in cs]
            lines.append(f"| {what} | " + " | ".join(cells) + " |")
    lines += ["", "| Checks and CPU | " + " | ".join(f"c={c}" for c in cs) + " |", "|---|" + "---|" * len(cs)]
    kv_cases = [_case(results, "kv", c) for c in cs]
    if any(kv_cases):
        lines.append(
            "| KV: verified commits / answers; shared counter read back |"
            + "".join(
                f" {c['raw'].get('verified', 0):,} / {c['raw'].get('requests', 0):,}; {c['raw'].get('counter', '-')} |"
                if c and c["raw"]
                else " - |"
                for c in kv_cases
            )
        )
    for key in results.get("commits", {}):
        cells = [_cpu_cell(_case(results, key, c)) for c in cs]
        lines.append(f"| {LABELS[key]}: server CPU % · µs per op · wrk CPU % | " + " | ".join(cells) + " |")
    notes = [f"- ⚠{n}: " + "; ".join(marks[n]) for n in range(1, marks.get("_n", 0) + 1)]
    return lines + (["", *notes] if notes else [])


def _cpu_cell(case: dict[str, Any] | None) -> str:
    if not case or case["server_cpu_pct"] is None:
        return "-"
    per_op = case["server_cpu_us_per_op"]
    return (
        f"{case['server_cpu_pct']:.0f}% · {per_op:.0f} µs · {case['load_cpu_pct']:.0f}%"
        if per_op
        else f"{case['server_cpu_pct']:.0f}%"
    )


def _lat(s: dict[str, Any] | None, keys: tuple[str, ...] = ("p50", "p90", "p99", "max")) -> str:
    if not s or not s.get("n"):
        return "-"
    return " / ".join(co.fmt_ms(s[k]) for k in keys)


def watch_report(w: dict[str, Any]) -> list[str]:
    plan, native, py = w.get("plan", {}), w.get("native") or {}, w.get("python") or {}
    n_native = plan.get("watchers", 0) - plan.get("order_watchers", 0)
    cpu = w.get("cpu_pct", {})
    lines = [
        f"#### Watch: {plan.get('watchers', 0):,} SSE watchers of one database through ONE edge, "
        f"{plan.get('rate', 0):g} commits/s",
        "",
        f"Watchers: {n_native:,} C readers (bench/sse_readers.c: kernel receive timestamps, a bitmap of "
        f"commits per watcher) + {plan.get('order_watchers', 0)} Python watchers that check every event "
        "(offset and versionstamp rising, commits in order, each once, at the offset its commit was answered "
        "with). Latency = receive time - the writer's send time of the commit (in the committed value).",
        "",
        "| Figure | Value |",
        "|---|---|",
        "| delivery latency p50 / p90 / p99 / max (ms), C watchers, kernel timestamps | "
        f"{_lat(native.get('latency_ms'))} |",
        f"| the same, user-space receive time (ms) | {_lat(native.get('latency_user_ms'))} |",
        f"| Python watchers: latency p50 / p90 / p99 / max (ms), user-space | {_lat(py.get('latency_ms'))} |",
        f"| Python watchers: receive - the event's `at` (origin commit time, ms) | {_lat(py.get('latency_at_ms'))} |",
        f"| commits sent / in the change stream; mean interval | {plan.get('commits', 0):,} / {w.get('stored', 0):,}; "
        f"{w.get('mean_interval_ms', 0):.1f} ms |",
        f"| writer commit ack p50 / p99 (ms) | {_lat(w.get('writer_ack_ms'), ('p50', 'p99'))} |",
        f"| C watchers: deliveries missed / expected; duplicated; watchers incomplete | {native.get('missed', '-')} / "
        f"{native.get('expected_deliveries', 0):,}; {native.get('duplicates', '-')}; "
        f"{native.get('readers_incomplete', '-')} |",
        f"| C watchers: subscribed / connected; reconnects; error statuses | {w.get('native_ready', '-')} / "
        f"{w.get('native_connected', '-')}; {native.get('reconnects', '-')}; {native.get('status_errors', {}) or 0} |",
        f"| Python watchers: received / expected; duplicated; out of order; offset or versionstamp not rising; "
        f"at another offset than its commit's answer | {py.get('received', 0):,} / {py.get('expected', 0):,}; "
        f"{py.get('duplicates', '-')}; {py.get('out_of_order', '-')}; {py.get('not_rising', '-')}; "
        f"{py.get('wrong_position', '-')} |",
        f"| reads carrying > 1 commit / all reads (C) | {native.get('multi_message_recvs', 0):,} / "
        f"{native.get('recvs', 0):,} |",
        f"| seconds until every watcher was subscribed | {w.get('subscribe_s', 0):.1f} |",
        f"| CPU % while committing: edge; origin; load generator (C readers + Python watchers and writer) | "
        f"{cpu.get('edge', 0):.0f}%; {cpu.get('origin', 0):.0f}%; {w.get('load_cpu_pct', 0):.0f}% |",
    ]
    kernel, user = (native.get("latency_ms") or {}).get("p99"), (native.get("latency_user_ms") or {}).get("p99")
    if kernel is not None and user is not None:
        lines += [
            "",
            f"The load generator's own delay: at p99 the C watchers read a commit {user - kernel:.1f} ms after the "
            f"kernel received it (kernel timestamps exclude that delay; user-space figures include it). The "
            f"Python watchers' user-space figures include their own event loop's delay, with the writer in the "
            f"same loop; the load core was {w.get('load_cpu_pct', 0):.0f}% busy while committing.",
        ]
    return lines


def key_figures(results: dict[str, Any], ctx: Ctx) -> list[str]:
    """The figures issue #14 asks for ("Done when"), one line each."""
    lines = ["#### Issue #14 figures", "", "| Figure | Value |", "|---|---|"]
    for conns in ctx.concurrency:
        case = _case(results, "kv", conns)
        if case is not None:
            flag = " (problems: see below)" if case["problems"] else ""
            lines.append(
                f"| KV atomic commits/s, c={conns} (p50 / p99 ms) | {co.cell({**case, 'problems': []}, {})}{flag} |"
            )
    watch = results.get("watch") or {}
    native, py = watch.get("native") or {}, watch.get("python") or {}
    if native.get("latency_ms") or py.get("latency_ms"):
        plan = watch.get("plan", {})
        figures = native.get("latency_ms") or py["latency_ms"]
        lost = native.get("missed", 0) + py.get("expected", 0) - py.get("received", 0)
        dups = native.get("duplicates", 0) + py.get("duplicates", 0)
        lines.append(
            f"| watch delivery latency p50 / p99 / max (ms), {plan.get('watchers', 0):,} watchers through one edge "
            f"| {_lat(figures, ('p50', 'p99', 'max'))} (missed {lost}, duplicated {dups}, out of order "
            f"{py.get('out_of_order', 0)}) |"
        )
    return lines


def report(results: dict[str, Any], machine: dict[str, Any], ctx: Ctx, args: argparse.Namespace, elapsed: float) -> str:
    end = os.getloadavg()
    mode = "quick run (smoke test only)" if args.quick else "full run"
    lines = [
        "### KV benchmark (issue #14): atomic commits/s and watch delivery latency",
        "",
        f"*{mode}; {machine['date']}; total {elapsed / 60:.1f} min. Commits: {ctx.duration} s per case, "
        f"{ctx.warmup} s warm-up per server; watch: {args.watchers:,} watchers, {args.rate:g} commits/s for "
        f"{args.watch_seconds:g} s.*",
        "",
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['mem_gib']} GiB RAM, Linux "
        f"{machine['kernel']}; Python {machine['python']}, Node {machine['node']}, {machine['wrk']}. Data dirs on "
        f"{machine['data_fs']}. Load average at start {machine['loadavg_start'][0]:.2f}, at end {end[0]:.2f}. "
        f"Pinning: {ctx.pinning.note}. Ours: file engine, `--fsync {ctx.origin_fsync}`.",
        "",
    ]
    lines += [*key_figures(results, ctx), ""]
    if results.get("commits"):
        lines += [*commits_report(results, ctx), ""]
    if results.get("watch"):
        lines += [*watch_report(results["watch"]), ""]
    problems = [(k, p) for k, system in results.get("commits", {}).items() for p in system["problems"]]
    problems += [("watch", p) for p in (results.get("watch") or {}).get("problems", [])]
    if problems:
        lines += ["**Problems observed**", ""] + [f"- {k}: {p}" for k, p in problems] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per case, 100 watchers x 3 s")
    parser.add_argument("--duration", type=int, default=None, help="seconds per commit case (default 10; --quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds per server (default 2; --quick 1)")
    parser.add_argument("--concurrency", default="1,64", help="commit/append concurrencies (default 1,64)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {','.join(SYSTEMS)}")
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {','.join(CASES)}")
    parser.add_argument("--watchers", type=int, default=None, help="SSE watchers (default 1000; --quick 100)")
    parser.add_argument("--order-watchers", type=int, default=50, help="of which Python watchers (default 50)")
    parser.add_argument("--rate", type=float, default=20.0, help="watch: commits per second (default 20)")
    parser.add_argument("--watch-seconds", type=float, default=None, help="watch: seconds of commits (15; --quick 3)")
    parser.add_argument("--watch-writer", choices=("origin", "edge"), default="origin", help="where the writer commits")
    parser.add_argument("--origin-fsync", choices=("always", "never"), default="always", help="ours: --fsync")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators with taskset")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU for the servers (default: the last one)")
    parser.add_argument("--load-cpu", type=int, default=None, help="CPU for the load (default: the first one)")
    parser.add_argument("--data-root", default=None, help="where the data dirs go (default: the system temp dir)")
    parser.add_argument("--out", default=None, help="raw output directory (default bench/results/<time>-kv)")
    args = parser.parse_args()
    args.duration = args.duration if args.duration is not None else (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.watchers = args.watchers if args.watchers is not None else (100 if args.quick else 1000)
    args.watch_seconds = args.watch_seconds if args.watch_seconds is not None else (3 if args.quick else 15)
    args.concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if any(s not in SYSTEMS for s in args.systems) or any(c not in CASES for c in args.cases):
        parser.error(f"--systems: choose from {SYSTEMS}; --cases: from {CASES}")
    if not args.concurrency or min(args.concurrency) < 1 or max(args.concurrency) > 512:
        parser.error("--concurrency values must be 1..512")
    if not (1 <= args.duration <= 600 and 1 <= args.watchers <= 10_000 and args.order_watchers >= 0):
        parser.error("--duration 1..600, --watchers 1..10000")
    if not (0.1 <= args.rate <= 1000 and 0.1 <= args.watch_seconds <= 600):
        parser.error("--rate 0.1..1000, --watch-seconds 0.1..600")
    if "commits" in args.cases and shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get update && apt-get install -y wrk")
    if "watch" in args.cases and args.watchers > args.order_watchers and shutil.which("gcc") is None:
        parser.error("gcc is needed for the C watchers (bench/sse_readers.c); or --order-watchers = --watchers")
    return args


def main() -> int:
    args = parse_args()
    # The edge and the C readers each need one descriptor per watcher; children inherit this.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.watchers + 1024))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    pinning = co.choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})  # this script, its watchers and wrk stay off the server core
        pinning.note = (
            f"servers (all threads; origin and edge together) on CPU {pinning.server_cpu}; wrk, the C watchers, "
            f"the Python watchers and writer on CPU {pinning.load_cpu}"
        )
    data_root = Path(args.data_root or tempfile.gettempdir()).resolve()
    out_dir = Path(args.out) if args.out else BENCH_DIR / "results" / time.strftime("%Y%m%d-%H%M%S-kv")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args.duration, args.warmup, args.concurrency, pinning, out_dir, data_root, args.origin_fsync)
    machine = co.machine_info(data_root)
    log(f"raw output in {out_dir}; {pinning.note}")

    began = time.monotonic()
    results: dict[str, Any] = {}
    if "commits" in args.cases:
        results["commits"] = {}
        for key in args.systems:
            try:
                results["commits"][key] = bench_system(key, ctx)
            except Exception as exc:
                log(f"{key}: could not run: {exc}")
                results["commits"][key] = {"key": key, "cases": {}, "problems": [f"not run: {exc}"]}
    if "watch" in args.cases:
        try:
            results["watch"] = watch_system(ctx, args)
        except Exception as exc:
            log(f"watch: could not run: {exc}")
            results["watch"] = {"problems": [f"not run: {exc}"]}
    elapsed = time.monotonic() - began
    text = report(results, machine, ctx, args, elapsed)
    co.save_report(out_dir, text, {"machine": machine, "args": vars(args), "results": results}, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
