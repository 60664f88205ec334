#!/usr/bin/env python3
"""Benchmark the origin's storage engines against each other: file vs postgres (issue #15).

One run, one machine, one origin at a time, three engines:

1. ``file``: ``plugin-streams origin`` with the file engine, ``--fsync always`` (fdatasync before
   every acknowledgement);
2. ``pg``: ``--engine postgres`` on a single PostgreSQL 15 node;
3. ``pg-sync``: ``--engine postgres`` on a primary that waits for a synchronous standby at every
   commit (tests/support/postgres.py: ``PgServer.create()``, ``add_sync_standby``).

PostgreSQL runs with its own durability on (``fsync = on``, ``synchronous_commit = on``; the
report shows what the servers answered to SHOW). Every origin gets a fresh database. Measured per
engine, with compare_origin.py's load generators and checks:

* durable appends: 100-byte binary POSTs, each connection its own stream... (compare_origin's
  ``append_case``: one fresh stream per case, wrk closed loop, read back afterwards) at c=1 and c=64;
* catch-up reads: whole-stream reads of a 1 MiB stream from ``offset=-1`` to its tail, following
  the ``Stream-Next-Offset`` chain (checked byte for byte before the run), 16 connections (wrk,
  bench/lua/read_chain.lua);
* long-poll delivery latency: N long-poll readers on one stream and one writer appending at a
  fixed interval, through the one origin (compare_origin's ``longpoll_case``, i.e.
  bench/longpoll_client.py).

Plus the CPU used by the origin process and by PostgreSQL (every process of the server: the
postmaster, its backends and auxiliary processes, including those that exited during the case;
for ``pg-sync`` the standby's processes too) over each case. The engines alternate within each of
``--runs`` runs; the report gives medians over the runs and the ratios postgres / file.

Markdown report on stdout, progress on stderr, raw output in ``--out`` (default
bench/results/<time>-engines/). Take the shared CPU lock for the whole run (see bench/README.md):

    flock /tmp/ps-cpu.lock .venv/bin/python bench/compare_engines.py [--runs 3] [--duration 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for _path in (str(BENCH_DIR), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import compare_origin as co  # noqa: E402  (servers, wrk, append/long-poll cases, machine info, save_report)

from tests.support import postgres as pgs  # noqa: E402  (throwaway PostgreSQL servers, sync standby)

ENGINES = ("file", "pg", "pg-sync")
LABELS = {
    "file": "file, fsync always",
    "pg": "postgres, 1 node",
    "pg-sync": "postgres + sync standby",
}
APPEND_CONCURRENCY = (1, 64)
CATCHUP_BYTES = 1024 * 1024
CATCHUP_BLOCK = 16 * 1024  # the fill's append size: 64 appends make the 1 MiB stream
CATCHUP_CONNS = 16
PG_SHOW = ("fsync", "synchronous_commit", "synchronous_standby_names", "wal_sync_method")
log = co.log


@dataclass
class Ctx:
    """What compare_origin's cases read (duration, warmup, lp_*, pinning, out_dir), plus the run plan."""

    duration: int
    warmup: int
    lp_readers: int
    lp_appends: int
    lp_interval: float
    pinning: co.Pinning
    out_dir: Path
    data_root: Path
    runs: int
    engines: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# PostgreSQL: servers for the whole benchmark, a fresh database per origin, CPU of all processes
# --------------------------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process, of its children that exited and were reaped, and of its live children.

    A postmaster's backends and auxiliary processes are its children; counting the reaped ones
    (cutime + cstime) keeps the sum rising when a backend exits during a case.
    """
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for index, proc in enumerate([pid, *pgs.children_of(pid)]):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile: its time is in the parent's cutime from now on
        own = int(fields[11]) + int(fields[12])
        reaped = int(fields[13]) + int(fields[14]) if index == 0 else 0
        total += (own + reaped) / tick
    return total


class Postgres:
    """The PostgreSQL of one engine: one node, or a primary with its synchronous standby."""

    def __init__(self, engine: str, pinning: co.Pinning) -> None:
        self.engine = engine
        self.primary = pgs.PgServer.create(name=f"bench-{engine}")
        self.servers = [self.primary]
        try:
            if engine == "pg-sync":
                self.servers.append(pgs.add_sync_standby(self.primary))
            for server in self.servers:  # later backends are forked by the postmaster: they inherit
                for pid in [server.pid, *pgs.children_of(server.pid)]:
                    pinning.pin_running(pid)
            self.settings = {name: self.primary.sql(f"SHOW {name}") for name in PG_SHOW}
        except BaseException:
            self.close()
            raise

    def cpu_seconds(self) -> float:
        return sum(tree_cpu_seconds(server.pid) for server in self.servers)

    def new_database(self) -> str:
        return pgs.create_database(self.primary)

    def drop_database(self, dsn: str) -> None:
        pgs.drop_database(self.primary, dsn)

    def close(self) -> None:
        for server in reversed(self.servers):
            server.close()


class EngineOrigin(co.OursServer):
    """compare_origin's origin process with the engine's arguments; raw files named per engine and run."""

    def __init__(self, ctx: Ctx, engine: str, run: int, engine_args: list[str]) -> None:
        super().__init__(ctx.data_root, ctx.out_dir, ctx.pinning, "always")
        self.key = f"{engine}-run{run}"
        self.log_path = ctx.out_dir / f"origin-{self.key}.log"
        self.engine_args = engine_args

    def command(self) -> list[str]:
        return super().command() + self.engine_args


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def fill_and_chain(http_: co.Http, path: str) -> list[str]:
    """Write a 1 MiB binary stream; return the GET targets a reader from offset -1 follows to the tail.

    Every body of the chain is checked: together they must be exactly the bytes written, and the
    last one must say Stream-Up-To-Date.
    """
    co.create_stream(http_, path, co.BINARY_CT)
    content = bytes(i % 251 for i in range(CATCHUP_BYTES))  # 251: no block repeats another
    for start in range(0, CATCHUP_BYTES, CATCHUP_BLOCK):
        block = content[start : start + CATCHUP_BLOCK]
        status, _, body = http_.request("POST", path, body=block, headers={"Content-Type": co.BINARY_CT})
        if status not in (200, 204):
            raise RuntimeError(f"fill append -> {status} {body[:200]!r}")
    chain, received, offset = [], b"", "-1"
    while len(chain) < 10_000:
        target = f"{path}?offset={quote(offset, safe='')}"
        status, hdrs, body = http_.request("GET", target)
        if status != 200:
            raise RuntimeError(f"catch-up GET {target} -> {status}")
        chain.append(target)
        received += body
        if hdrs.get("stream-up-to-date", "").lower() == "true":
            break
        offset = hdrs.get("stream-next-offset", offset)
    if received != content:
        raise RuntimeError(f"reading from -1 gave {len(received)} bytes in {len(chain)} GETs, not the 1 MiB written")
    return chain


def catchup_case(origin: EngineOrigin, url: str, ctx: Ctx) -> co.CaseResult:
    res = co.CaseResult(f"catch-up 1 MiB from -1, c={CATCHUP_CONNS}", "catchup")
    http_ = co.Http(url)
    try:
        chain = fill_and_chain(http_, f"/v1/stream/bench-{origin.key}-catchup-{uuid.uuid4().hex[:8]}")
        res.raw["gets_per_read"] = len(chain)
        r, spct, lpct = co.run_wrk(
            url,
            co.LUA_DIR / "read_chain.lua",
            [str(CATCHUP_BYTES // len(chain)), *chain],
            CATCHUP_CONNS,
            ctx.duration,
            ctx.pinning,
            origin,
            ctx.out_dir / f"{origin.key}-catchup.wrk.txt",
        )
        res.raw.update(r)
        secs = r["duration_us"] / 1e6
        res.rate = r["good"] / len(chain) / secs if secs > 0 else None  # whole-stream reads/s
        res.p50_ms, res.p99_ms = r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000  # per GET
        res.server_cpu_pct, res.load_cpu_pct = spct, lpct
        if r["bad_status"] or r["bad_size"]:
            res.problems.append(f"{r['bad_status']} non-200 and {r['bad_size']} wrong-size responses (not counted)")
        if co._socket_errors(r):
            res.problems.append(f"socket errors: {co._socket_errors(r)}")
    except Exception as exc:  # a failed case must not hide the others
        res.ok = False
        res.problems.append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def with_cpu(
    case: Callable[[], co.CaseResult], origin: EngineOrigin, database: Postgres | None, ops: Callable[[dict], float]
) -> dict[str, Any]:
    """Run a case; add the CPU the origin and PostgreSQL used over its whole window (setup, load, checks)."""
    assert origin.pid is not None
    origin0, pg0, t0 = co._proc_cpu_seconds(origin.pid), database.cpu_seconds() if database else None, time.monotonic()
    result = case().__dict__
    wall = time.monotonic() - t0
    origin1, pg1 = co._proc_cpu_seconds(origin.pid), database.cpu_seconds() if database else None
    origin_s = origin1 - origin0 if origin0 is not None and origin1 is not None else None
    pg_s = pg1 - pg0 if pg0 is not None and pg1 is not None else None
    count = ops(result) if result["ok"] else 0
    result["window"] = {
        "wall_s": wall,
        "origin_cpu_s": origin_s,
        "pg_cpu_s": pg_s,
        "origin_cpu_pct": 100 * origin_s / wall if origin_s is not None else None,
        "pg_cpu_pct": 100 * pg_s / wall if pg_s is not None else None,
        "ops": count,
        "cpu_us_per_op": 1e6 * ((origin_s or 0) + (pg_s or 0)) / count if count and origin_s is not None else None,
    }
    return result


def appends_done(case: dict) -> float:
    return float(case["raw"].get("records_stored") or 0)


def reads_done(case: dict) -> float:
    return case["raw"]["good"] / case["raw"]["gets_per_read"]


def deliveries_done(case: dict) -> float:
    return float(case["raw"]["deliveries"])


def bench_engine(engine: str, run: int, ctx: Ctx, database: Postgres | None) -> dict[str, Any]:
    """One origin on a fresh database (or data dir): warm-up, then every case, then its log scanned."""
    out: dict[str, Any] = {"engine": engine, "run": run, "cases": {}, "problems": []}
    dsn = database.new_database() if database else None
    origin = EngineOrigin(ctx, engine, run, ["--engine", "postgres", "--database-url", dsn] if dsn else [])
    try:
        url = origin.start()
        log(f"run {run}, {LABELS[engine]}: {url} (pid {origin.pid})")
        co.warmup(origin, url, ctx)
        steps: list[tuple[str, Callable[[], co.CaseResult], Callable[[dict], float]]] = [
            *(
                (f"appends c={c}", lambda c=c: co.append_case(origin, url, ctx, co.BINARY_CT, False, c), appends_done)
                for c in APPEND_CONCURRENCY
            ),
            ("catch-up", lambda: catchup_case(origin, url, ctx), reads_done),
            ("long-poll", lambda: co.longpoll_case(origin, url, ctx), deliveries_done),
        ]
        for name, case, ops in steps:
            if not origin.alive():
                out["problems"].append(f"origin exited (status {origin.returncode()}) before {name}")
                break
            out["cases"][name] = result = with_cpu(case, origin, database, ops)
            rate = f"{result['rate']:,.0f}/s, " if result["rate"] is not None else ""
            flag = f"  PROBLEMS: {'; '.join(result['problems'])}" if result["problems"] else ""
            log(f"  {name}: {rate}p50 {co.fmt_ms(result['p50_ms'])} ms, p99 {co.fmt_ms(result['p99_ms'])} ms{flag}")
    finally:
        out["problems"] += co.stop_and_check(origin)
        if database and dsn:
            database.drop_database(dsn)
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

#: (row title, case, how to read the figure, ratio wanted); medians over the runs.
Figure = tuple[str, str, Callable[[dict], float | None], bool]


def _window(key: str) -> Callable[[dict], float | None]:
    return lambda case: case["window"][key]


FIGURES: list[Figure] = [
    ("durable appends/s, c=1", "appends c=1", lambda case: case["rate"], True),
    ("append p50 ms, c=1", "appends c=1", lambda case: case["p50_ms"], True),
    ("durable appends/s, c=64", "appends c=64", lambda case: case["rate"], True),
    ("append p50 ms, c=64", "appends c=64", lambda case: case["p50_ms"], True),
    ("catch-up whole-stream reads/s (1 MiB from -1, c=16)", "catch-up", lambda case: case["rate"], True),
    ("catch-up GET p50 ms (one 64 KiB response)", "catch-up", lambda case: case["p50_ms"], True),
    ("long-poll delivery p50 ms", "long-poll", lambda case: case["p50_ms"], True),
    ("long-poll delivery p99 ms", "long-poll", lambda case: case["p99_ms"], True),
]
CPU_CASES = ("appends c=1", "appends c=64", "catch-up", "long-poll")
CPU_FIGURES: list[Figure] = [
    *((f"CPU origin %, {name}", name, _window("origin_cpu_pct"), False) for name in CPU_CASES),
    *((f"CPU postgres %, {name}", name, _window("pg_cpu_pct"), False) for name in CPU_CASES),
    *((f"CPU µs per op (origin + postgres), {name}", name, _window("cpu_us_per_op"), True) for name in CPU_CASES),
]


def median_of(runs: list[dict[str, Any]], engine: str, figure: Figure) -> tuple[float | None, list[float]]:
    values = []
    for run in runs:
        case = run["cases"].get(figure[1]) if run["engine"] == engine else None
        value = figure[2](case) if case is not None and case["ok"] else None
        if value is not None:
            values.append(float(value))
    return (statistics.median(values) if values else None), values


def fmt(value: float | None, title: str) -> str:
    if value is None:
        return "-"
    return co.fmt_ms(value) if " ms" in title else f"{value:,.0f}"


def table(runs: list[dict[str, Any]], ctx: Ctx, figures: list[Figure]) -> list[str]:
    engines = ctx.engines
    pg_engines = [e for e in engines if e != "file"] if "file" in engines else []
    head = ["Figure (median of runs)", *(LABELS[e] for e in engines), *(f"{LABELS[e]} / file" for e in pg_engines)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for figure in figures:
        medians = {e: median_of(runs, e, figure)[0] for e in engines}
        cells = [figure[0], *(fmt(medians[e], figure[0]) for e in engines)]
        for e in pg_engines:
            cells.append(co.fmt_ratio(co.ratio(medians[e], medians["file"])) if figure[3] else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_run_table(runs: list[dict[str, Any]], ctx: Ctx) -> list[str]:
    head = ["Figure", *(LABELS[e] for e in ctx.engines)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for figure in [*FIGURES, *CPU_FIGURES]:
        cells = [figure[0]]
        for e in ctx.engines:
            cells.append(" · ".join(fmt(v, figure[0]) for v in median_of(runs, e, figure)[1]) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(runs: list[dict[str, Any]], machine: dict, pg_settings: dict, ctx: Ctx, elapsed: float) -> str:
    lines = ["## Origin storage engines: file vs postgres (issue #15)", ""]
    lines += [
        f"*{ctx.runs} run(s), engines alternating within each; {ctx.duration} s per wrk case, "
        f"{ctx.warmup} s warm-up per origin; long-poll {ctx.lp_readers} readers x {ctx.lp_appends} appends every "
        f"{ctx.lp_interval * 1000:.0f} ms; {machine['date']}; total {elapsed / 60:.1f} min.*",
        "",
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['mem_gib']} GiB RAM, Linux "
        f"{machine['kernel']}, {machine['wrk']}. Data (file engine and PostgreSQL) on {machine['data_fs']}. "
        f"Load average at start {machine['loadavg_start'][0]:.2f}, at end {os.getloadavg()[0]:.2f}. "
        f"Pinning: {ctx.pinning.note} (PostgreSQL's processes on the server CPU too).",
        "",
        "PostgreSQL 15 answered SHOW: "
        + "; ".join(f"{e}: " + ", ".join(f"{k}={v or '(empty)'}" for k, v in s.items()) for e, s in pg_settings.items())
        + ".",
        "",
        "Appends: 100-byte binary POSTs, one fresh stream per case, each connection its own wrk thread, closed "
        "loop; acknowledged appends read back afterwards. Catch-up: a whole read is every GET of the chain a "
        "reader follows from offset -1 to the tail of a 1 MiB stream; GET latency is per response. "
        "CPU: CPU time over the case's whole window (stream set-up, load, read-back) / its wall time "
        "(100% = one core); postgres = every process of the server(s), the standby's included.",
        "",
    ]
    lines += [*table(runs, ctx, FIGURES), ""]
    lines += [*table(runs, ctx, CPU_FIGURES), ""]
    lines += ["<details><summary>Every run (values in run order)</summary>", ""]
    lines += [*per_run_table(runs, ctx), "", "</details>", ""]
    problems = [
        f"run {run['run']}, {LABELS[run['engine']]}: {problem}"
        for run in runs
        for problem in [*run["problems"], *(p for c in run["cases"].values() for p in c["problems"])]
    ]
    if problems:
        lines += ["**Problems observed**", "", *(f"- {p}" for p in problems), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Compare the origin's file and postgres engines (bench/README.md).")
    parser.add_argument("--runs", type=int, default=3, help="runs; the report gives medians (default 3)")
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk case (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured append seconds per origin (default 1)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    parser.add_argument("--lp-readers", type=int, default=100, help="long-poll readers (default 100)")
    parser.add_argument("--lp-appends", type=int, default=30, help="long-poll writer appends (default 30)")
    parser.add_argument("--lp-interval", type=float, default=0.1, help="seconds between writer appends (0.1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU of the origin and PostgreSQL (last)")
    parser.add_argument("--load-cpu", type=int, default=None, help="CPU of wrk and the clients (first)")
    parser.add_argument("--data-root", default=None, help="where the file engine's data dirs go (system temp dir)")
    parser.add_argument("--out", default=None, help="raw output directory (default bench/results/<time>-engines)")
    args = parser.parse_args()
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if not engines or any(e not in ENGINES for e in engines):
        parser.error(f"--engines: choose from {ENGINES}")
    args.engines = engines
    if not (1 <= args.runs <= 20 and 1 <= args.duration <= 120 and 0 <= args.warmup <= 60):
        parser.error("--runs 1..20, --duration 1..120, --warmup 0..60")
    if not (1 <= args.lp_readers <= 5000 and 1 <= args.lp_appends <= 10000 and 0.01 <= args.lp_interval <= 5):
        parser.error("long-poll parameters out of range")
    return args


def main() -> int:
    args = parse_args()
    missing = pgs.missing_postgres() if any(e != "file" for e in args.engines) else None
    if shutil.which("wrk") is None or missing:
        print(missing or "wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    pinning = co.choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})
    data_root = Path(args.data_root or tempfile.gettempdir()).resolve()
    out_dir = Path(args.out) if args.out else BENCH_DIR / "results" / f"{time.strftime('%Y%m%d-%H%M%S')}-engines"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        args.duration,
        args.warmup,
        args.lp_readers,
        args.lp_appends,
        args.lp_interval,
        pinning,
        out_dir,
        data_root,
        args.runs,
        args.engines,
    )
    machine = co.machine_info(data_root)
    per_origin = args.warmup + 3 * (args.duration + 2) + args.lp_appends * args.lp_interval + 12
    estimate = per_origin * len(ctx.engines) * args.runs / 60
    log(f"engines {list(args.engines)} x {args.runs} runs; estimated >= {estimate:.1f} min")
    log(f"raw output in {out_dir}; {pinning.note}")
    t0 = time.monotonic()
    databases: dict[str, Postgres] = {}
    runs: list[dict[str, Any]] = []
    try:
        for engine in ctx.engines:
            if engine != "file":
                databases[engine] = Postgres(engine, pinning)
        for run in range(1, args.runs + 1):
            for engine in ctx.engines:
                try:
                    runs.append(bench_engine(engine, run, ctx, databases.get(engine)))
                except Exception as exc:
                    log(f"run {run}, {engine}: could not run: {exc}")
                    runs.append({"engine": engine, "run": run, "cases": {}, "problems": [f"not run: {exc}"]})
    finally:
        for database in databases.values():
            database.close()
    elapsed = time.monotonic() - t0
    pg_settings = {LABELS[e]: d.settings for e, d in databases.items()}
    text = report(runs, machine, pg_settings, ctx, elapsed)
    results = {"machine": machine, "args": vars(args), "pg_settings": pg_settings, "runs": runs}
    co.save_report(out_dir, text, results, elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
