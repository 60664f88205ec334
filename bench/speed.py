#!/usr/bin/env python3
"""Issue #16's whole table in one command: our origin and the Node reference server side by side.

Servers, one at a time, on the server core (the load generators on the other):

* ``ours``: ``plugin-streams origin``, file engine, ``--fsync always`` (fdatasync before every ack);
* ``ours-never``: the same with ``--fsync never``;
* ``node-memory`` / ``node-datadir``: ``@durable-streams/server`` 0.3.7 in memory / with ``dataDir``.

Rows (bench/speed_report.py has their titles and targets):

1-3. 100-byte appends (binary c=64, JSON c=64, binary c=1): wrk + bench/lua/append.lua, a fresh
     stream per case, read back afterwards (compare_origin.append_case);
4.   JSON batches of 100 messages, c=16 (bench/lua/append_batch.lua), read back the same way;
5-6. whole-stream catch-up of a 1 MiB stream of 100-byte messages (binary, JSON), c=16: every
     connection walks from ``offset=-1`` along ``Stream-Next-Offset`` to ``Stream-Up-To-Date``
     and starts again (bench/walk_reader.c; bench/catchup_walk.py checks one walk's content first);
7.   rows 5-6 through one ``plugin-streams edge`` in front of ``ours`` (cache warmed first);
8.   empty reads at the tail, c=16;
plus compare_edge.py's long-poll and SSE fan-out through an edge, as a second table.

Per case: the CPU seconds and % of each server process and of the load generator, and CPU per
operation. Markdown on stdout, progress on stderr, report.md + results.json + raw outputs in
``--out`` (default bench/results/<time>-speed/). See bench/README.md ("speed.py").

    flock /tmp/ps-cpu.lock .venv/bin/python bench/speed.py [--quick] [--cases ...] [--servers ...]
"""

from __future__ import annotations

import argparse
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

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import catchup_walk as cw  # noqa: E402  (fill, verify, the C walker)
import compare_edge as ce  # noqa: E402  (the edge process; the long-poll and SSE fan-out cases)
import compare_origin as co  # noqa: E402  (servers, wrk, append cases, pinning, machine info)
import speed_report as sr  # noqa: E402  (rows, targets, the markdown)

log = co.log
SERVERS = ("ours", "ours-never", "node-memory", "node-datadir")
FANOUT_CASES = ("longpoll", "sse")
GROUPS = {
    "appends": ["binary-c64", "json-c64", "binary-c1", "batch-c16"],
    "catchup": ["catchup-binary", "catchup-json", "edge-binary", "edge-json"],
    "edge": ["edge-binary", "edge-json"],
    "fanout": list(FANOUT_CASES),
}
CATCHUP_CONNS = 16
#: the unmeasured walk before each catch-up case (Node's JIT, our caches, the edge's cache)
WALK_WARMUP_S = 1.0


@dataclass
class Ctx:
    """The run's settings; also what compare_origin's cases read (duration, warmup, pinning, out_dir)."""

    duration: int
    warmup: int
    pinning: co.Pinning
    out_dir: Path
    data_root: Path
    cases: list[str]
    chunk_size: int | None
    fanout: dict[str, Any]


class Origin(co.OursServer):
    """Our origin with the run's --fsync and --chunk-size."""

    def __init__(self, key: str, ctx: Ctx, fsync: str) -> None:
        super().__init__(ctx.data_root, ctx.out_dir, ctx.pinning, fsync)
        self.key = key
        self.log_path = ctx.out_dir / f"{key}.log"
        self.chunk_size = ctx.chunk_size

    def command(self) -> list[str]:
        extra = ["--chunk-size", str(self.chunk_size)] if self.chunk_size else []
        return super().command() + extra


def make_server(key: str, ctx: Ctx) -> Origin | co.NodeServer:
    if key.startswith("ours"):
        return Origin(key, ctx, "never" if key == "ours-never" else "always")
    return co.NodeServer(key == "node-datadir", ctx.data_root, ctx.out_dir, ctx.pinning)


def process_name(key: str) -> str:
    return "origin" if key.startswith("ours") else "node"


# --------------------------------------------------------------------------------------------
# Cases: each returns one JSON-able dict (sr.case_dict's fields)
# --------------------------------------------------------------------------------------------


def append_row(row: sr.Row, server: Any, url: str, ctx: Ctx) -> dict[str, Any]:
    """Rows 1-4 with compare_origin's append case (status counts, read-back check)."""
    res = co.append_case(server, url, ctx, row.content_type, False, row.conns, batch=row.batch)
    raw = res.raw
    acknowledged = raw.get("s200", 0) + raw.get("s204", 0) + raw.get("s2xx_other", 0)
    cpu = {process_name(server.key): raw.get("server_cpu_s"), "load": raw.get("load_cpu_s")}
    verified = f"{acknowledged * row.batch:,} messages acknowledged, {raw.get('records_stored', 0):,} read back"
    return sr.case_dict(
        ok=res.ok,
        rate=res.rate,
        p50_ms=res.p50_ms,
        p99_ms=res.p99_ms,
        cpu_s=cpu,
        wall_s=raw.get("wall_s"),
        ops=acknowledged * row.batch,
        verified=verified,
        problems=res.problems,
        raw=raw,
    )


def walk_row(row: sr.Row, url: str, stream: cw.Stream, ctx: Ctx, procs: dict[str, int], tag: str) -> dict[str, Any]:
    """Rows 5-8: an unmeasured walk, then the measured one (whole walks, or reads at the tail)."""
    tail = row.case == "tail"
    try:
        raw_path = ctx.out_dir / f"{tag}-{row.case}.walk.txt"
        warm = ctx.out_dir / f"{tag}-{row.case}-warmup.walk.txt"
        cw.run_walker(url, stream, CATCHUP_CONNS, WALK_WARMUP_S, ctx.pinning, procs, warm, from_tail=tail)
        r = cw.run_walker(url, stream, CATCHUP_CONNS, ctx.duration, ctx.pinning, procs, raw_path, from_tail=tail)
    except Exception as exc:  # a failed case must not hide the others
        return sr.case_dict(ok=False, problems=[f"case failed: {exc}"])
    secs = r["elapsed_s"]
    problems = cw.walker_problems(r)
    if tail:
        rate, ops = r["walks_good"] / secs, r["walks_good"]
        verified = f"{r['walks_good']:,} reads, each 200, empty and up to date at {stream.tail}"
    else:
        rate, ops = r["bytes_good"] / secs / 1e6, r["bytes_good"] / 2**20
        verified = (
            f"{r['walks_good']:,} walks of {stream.walk_bytes:,} B ({stream.gets_per_walk} GETs each); "
            f"content checked once ({len(stream.messages):,} messages)"
        )
    return sr.case_dict(
        ok=r["walks_good"] > 0,
        rate=rate,
        p50_ms=r["lat_p50_us"] / 1000,
        p99_ms=r["lat_p99_us"] / 1000,
        cpu_s=r["cpu_s"],
        wall_s=r["wall_s"],
        ops=ops,
        verified=verified,
        problems=problems,
        raw=r,
    )


def catchup_streams(url: str, key: str, cases: list[str]) -> dict[str, cw.Stream]:
    """The filled and verified streams the selected catch-up, edge and tail rows read."""
    wanted = {co.BINARY_CT} if any(c in cases for c in ("catchup-binary", "edge-binary", "tail")) else set()
    if any(c in cases for c in ("catchup-json", "edge-json")):
        wanted.add(co.JSON_CT)
    streams = {}
    for ctype in sorted(wanted):
        kind = "binary" if ctype == co.BINARY_CT else "json"
        t0 = time.monotonic()
        stream = cw.fill(url, f"/v1/stream/speed-{key}-{kind}-{uuid.uuid4().hex[:8]}", ctype)
        cw.verify(url, stream)
        log(f"  {kind} stream: {stream.walk_bytes:,} B in {stream.gets_per_walk} GETs ({time.monotonic() - t0:.1f} s)")
        streams[kind] = stream
    return streams


def edge_rows(origin: Origin, streams: dict[str, cw.Stream], ctx: Ctx) -> dict[str, dict[str, Any]]:
    """Row 7: one edge in front of `origin`; each stream walked once through it (checked, and the
    cache filled), then the walker's warm-up and measured run; the edge's upstream requests counted."""
    edge_ctx = ce.Ctx(data_root=ctx.data_root, out_dir=ctx.out_dir, pinning=ctx.pinning, origin_fsync=origin.fsync)
    edge = ce.PluginProc("edge", "speed", edge_ctx, origin.url)
    out: dict[str, dict[str, Any]] = {}
    try:
        url = edge.start()
        log(f"  edge {url} (pid {edge.pid}) in front of {origin.url}")
        assert edge.pid is not None and origin.pid is not None
        procs = {"edge": edge.pid, "origin": origin.pid}
        for kind in ("binary", "json"):
            case = f"edge-{kind}"
            if case not in ctx.cases or kind not in streams:
                continue
            through = cw.Stream(streams[kind].path, streams[kind].content_type, streams[kind].messages)
            try:
                cw.verify(url, through)
            except Exception as exc:
                out[case] = sr.case_dict(ok=False, problems=[f"case failed: {exc}"])
                continue
            before = ce.scrape(url + "/metrics")
            out[case] = walk_row(sr.ROW_BY_CASE[case], url, through, ctx, procs, "ours-edge")
            after = ce.scrape(url + "/metrics")
            upstream = ce.msum(after, "ds_edge_upstream_requests_total") - ce.msum(
                before, "ds_edge_upstream_requests_total"
            )
            walks = out[case].get("raw", {}).get("walks_good", 0) + out[case].get("raw", {}).get("walks_bad", 0)
            out[case]["edge_upstream"] = upstream
            if walks:
                out[case]["verified"] += f"; {upstream / walks:.2f} upstream requests per walk (incl. warm-up)"
    except Exception as exc:
        for kind in ("binary", "json"):
            out.setdefault(f"edge-{kind}", sr.case_dict(ok=False, problems=[f"edge: {exc}"]))
    finally:
        problems = co.stop_and_check(edge)
        for res in out.values():
            res["problems"] += problems
    return out


def bench_server(key: str, ctx: Ctx) -> dict[str, Any]:
    server = make_server(key, ctx)
    out: dict[str, Any] = {"key": key, "label": sr.LABELS[key], "cases": {}, "problems": []}
    log(f"starting {sr.LABELS[key]}")
    try:
        url = server.start()
    except Exception as exc:
        out["problems"].append(f"could not start: {exc}")
        return out
    server.url = url
    log(f"  {url} (pid {server.pid})")
    try:
        co.warmup(server, url, ctx)
        for row in sr.ROWS:
            if row.kind == "append" and row.case in ctx.cases and server.alive():
                out["cases"][row.case] = append_row(row, server, url, ctx)
                log_case(row, out["cases"][row.case])
        walks = [r for r in sr.ROWS if r.kind == "walk" and r.case in ctx.cases]
        needs_edge = key == "ours" and any(c in ctx.cases for c in GROUPS["edge"])
        if (walks or needs_edge) and server.alive():
            streams = catchup_streams(url, key, ctx.cases)
            procs = {process_name(key): server.pid}
            for row in walks:
                stream = streams["json" if row.content_type == co.JSON_CT else "binary"]
                out["cases"][row.case] = walk_row(row, url, stream, ctx, procs, key)
                log_case(row, out["cases"][row.case])
            if needs_edge:
                for case, res in edge_rows(server, streams, ctx).items():
                    out["cases"][case] = res
                    log_case(sr.ROW_BY_CASE[case], res)
        if not server.alive():
            out["problems"].append(f"server exited (status {server.returncode()}) during the run")
    except Exception as exc:
        out["problems"].append(f"stopped early: {exc}")
    finally:
        if key.startswith("ours") and "stopping: draining" in server.log_path.read_text(errors="replace"):
            out["problems"].append("the origin received SIGTERM/SIGINT from outside this script during the run")
        out["problems"] += co.stop_and_check(server)
        log(f"stopped {sr.LABELS[key]}")
    return out


def log_case(row: sr.Row, res: dict[str, Any]) -> None:
    flag = f"  PROBLEMS: {'; '.join(res['problems'])}" if res["problems"] else ""
    log(f"  {row.case}: {sr.figure_cell(row, res)}{flag}")


def fanout(ctx: Ctx, args: argparse.Namespace) -> dict[str, Any] | None:
    """compare_edge.py's long-poll (ours through an edge, and Node) and SSE cases (ours), as they are."""
    cases = [c for c in FANOUT_CASES if c in ctx.cases]
    if not cases:
        return None
    f = ctx.fanout
    edge_ctx = ce.Ctx(
        cases=cases,
        duration=ctx.duration,
        warmup=ctx.warmup,
        interval=0.1,
        origin_fsync="always",
        sse_writer="origin",
        sse_client="native" if shutil.which("gcc") else "python",
        pinning=ctx.pinning,
        out_dir=ctx.out_dir,
        data_root=ctx.data_root,
        after_close=2.0,
        **f,
    )
    t0 = time.monotonic()
    runs = []
    if "longpoll" in cases:
        runs += [ce.run_system("ours", "a", edge_ctx, ["longpoll"]), ce.run_system("node", "a", edge_ctx, ["longpoll"])]
    if "sse" in cases:  # a fresh edge: its RSS before the clients is the baseline
        runs.append(ce.run_system("ours", "sse", edge_ctx, ["sse"]))
    machine = co.machine_info(ctx.data_root)
    results = {"machine": machine, "runs": runs, "loadavg_end": os.getloadavg()}
    edge_args = argparse.Namespace(quick=args.quick, sse_node=False)
    text = ce.report(results, edge_ctx, edge_args, time.monotonic() - t0)
    return {"results": results, "markdown": text}


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_cases(text: str) -> list[str]:
    known = [r.case for r in sr.ROWS] + list(FANOUT_CASES)
    cases: list[str] = []
    for name in (c.strip() for c in text.split(",") if c.strip()):
        for case in GROUPS.get(name, [name]):
            if case not in known:
                raise ValueError(f"unknown case {case!r}; choose from {', '.join(known)} or {', '.join(GROUPS)}")
            if case not in cases:
                cases.append(case)
    if not cases:
        raise ValueError("no case selected")
    return cases


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Issue #16's table: ours and Node side by side (bench/README.md).")
    parser.add_argument("--quick", action="store_true", help="smoke run (about 4 minutes): 2 s cases, small fan-out")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured case (8; --quick: 2)")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured append seconds per server (2; quick 1)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"subset of {','.join(SERVERS)}")
    parser.add_argument(
        "--cases",
        default="appends,catchup,tail,fanout",
        help="rows to run: binary-c64, json-c64, binary-c1, batch-c16, catchup-binary, catchup-json, edge-binary, "
        "edge-json, tail, longpoll, sse; or groups appends, catchup, edge, fanout (default: all)",
    )
    parser.add_argument("--chunk-size", type=int, default=None, help="our origin's --chunk-size (default: its own)")
    parser.add_argument("--baseline", default=None, help="results.json of an earlier run: the tail-read target")
    parser.add_argument("--lp-readers", type=int, default=None, help="fan-out: long-poll readers (5000; quick 500)")
    parser.add_argument("--lp-appends", type=int, default=None, help="fan-out: long-poll appends (100; quick 20)")
    parser.add_argument("--sse-readers", type=int, default=None, help="fan-out: SSE readers (10000; quick 1000)")
    parser.add_argument("--sse-events", type=int, default=None, help="fan-out: SSE events (300; quick 50)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU for the servers (default: the last one)")
    parser.add_argument("--load-cpu", type=int, default=None, help="CPU for the load generators (default: the first)")
    parser.add_argument("--data-root", default=None, help="where the data directories go (default: temp dir)")
    parser.add_argument("--out", default=None, help="output directory (default bench/results/<time>-speed)")
    args = parser.parse_args(argv)
    try:
        args.case_list = parse_cases(args.cases)
    except ValueError as exc:
        parser.error(str(exc))
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not args.server_list or any(s not in SERVERS for s in args.server_list):
        parser.error(f"--servers: choose from {', '.join(SERVERS)}")
    args.duration = args.duration if args.duration is not None else (2 if args.quick else 8)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if not (1 <= args.duration <= 600 and 0 <= args.warmup <= 60):
        parser.error("--duration 1..600, --warmup 0..60")
    if args.chunk_size is not None and args.chunk_size < 1:
        parser.error("--chunk-size must be positive")
    return args


def fanout_settings(args: argparse.Namespace) -> dict[str, int]:
    q = args.quick
    return {
        "lp_readers": args.lp_readers or (500 if q else 5000),
        "lp_appends": args.lp_appends or (20 if q else 100),
        "sse_readers": args.sse_readers or (1000 if q else 10000),
        "sse_events": args.sse_events or (50 if q else 300),
    }


def estimate_minutes(args: argparse.Namespace, fan: dict[str, int]) -> float:
    """A lower bound of the run's length, from the selected rows and servers (measured overheads)."""
    rows = [sr.ROW_BY_CASE[c] for c in args.case_list if c in sr.ROW_BY_CASE]
    per_server = 3 + args.warmup if rows else 0
    per_server += sum(args.duration + 2 for r in rows if r.kind == "append")
    per_server += sum(args.duration + WALK_WARMUP_S + 1 for r in rows if r.kind == "walk")
    seconds = per_server * len(args.server_list) + 5  # + the fills, Node dataDir's at about 1k appends/s
    if "ours" in args.server_list:
        seconds += sum(args.duration + WALK_WARMUP_S + 2 for r in rows if r.kind == "edge")
    if "longpoll" in args.case_list:  # compare_edge.py's: both systems, the writer paced at 10/s
        seconds += 2 * (fan["lp_readers"] / 1000 + fan["lp_appends"] * 0.1 + 12)
    if "sse" in args.case_list:
        seconds += fan["sse_readers"] / 700 + fan["sse_readers"] / 2500 + fan["sse_events"] * 0.1 + 11
    return seconds / 60


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("wrk", "gcc") if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get update && apt-get install -y wrk gcc", file=sys.stderr)
        return 2
    settings = fanout_settings(args)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the edge and the clients: one fd per reader
    want = min(hard, max(soft, 2 * (max(settings["lp_readers"], settings["sse_readers"]) + 1024)))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    pinning = co.choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})  # this script's own work stays off the server core
    data_root = Path(args.data_root or tempfile.gettempdir()).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out) if args.out else BENCH_DIR / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-speed"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(args.duration, args.warmup, pinning, out_dir, data_root, args.case_list, args.chunk_size, settings)
    cw.walker_binary()  # built before any server starts (a compile error stops the run here)
    machine = co.machine_info(data_root)
    log(f"servers {args.server_list}; cases {args.case_list}; {args.duration} s per case; raw output in {out_dir}")
    log(f"{pinning.note}; estimated about {estimate_minutes(args, settings):.0f} min")
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    t0 = time.monotonic()
    table_rows = [c for c in ctx.cases if c in sr.ROW_BY_CASE]
    results = [bench_server(key, ctx) for key in args.server_list] if table_rows else []
    fan = fanout(ctx, args)
    elapsed = time.monotonic() - t0
    run = {"machine": machine, "args": vars(args), "servers": results, "fanout": fan and fan["results"]}
    text = sr.report(run, ctx, args, elapsed, baseline, fan)
    co.save_report(out_dir, text, run, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
