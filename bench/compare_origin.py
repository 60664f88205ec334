#!/usr/bin/env python3
"""Benchmark the plugin-streams origin against the Node reference server, side by side.

One run, one machine, servers one at a time (never concurrently), the same load generator for
every server:

1. ours: ``plugin-streams origin`` (file engine, ``--fsync always``: fdatasync before every
   acknowledgement), long-poll timeout 5 s;
2. Node ``@durable-streams/server`` 0.3.7 in memory;
3. Node ``@durable-streams/server`` 0.3.7 with ``dataDir`` (file segments + LMDB, fsync per append);

both Node modes with a 5 s long-poll timeout and compression off. Measured per server:

* appends: 100-byte POSTs to one fresh stream per case, JSON and binary, with and without
  idempotent-producer headers, at 1/16/64 connections (wrk, closed loop);
* catch-up reads: GETs that each return one 64 KiB chunk, 16 connections (wrk);
* long-poll fan-out: 1,000 long-poll readers on one stream, one writer appending every 100 ms
  (bench/longpoll_client.py, a separate process).

Prints a markdown report (machine, tables, ratios, targets) on stdout; progress goes to stderr.
Raw wrk output, server logs and results.json go to ``--out`` (default bench/results/<time>/).
See bench/README.md.

    .venv/bin/python bench/compare_origin.py [--quick] [--duration S]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_DIR = BENCH_DIR / "lua"
CONFORMANCE_DIR = REPO / "tests" / "conformance"

JSON_CT = "application/json"
BINARY_CT = "application/octet-stream"
CHUNK = 64 * 1024
FILL_APPENDS = 160  # 160 x 1 KiB = 160 KiB (> 128 KiB) in the catch-up stream
LONG_POLL_TIMEOUT_S = 5
WRK_TIMEOUT = "10s"  # wrk's per-request timeout (its default of 2 s would drop slow fsync tails)

CASE_KINDS = ("appends", "catchup", "longpoll")
SERVER_KEYS = ("ours", "node-memory", "node-datadir")
SERVER_LABELS = {
    "ours": "ours (file, fsync always)",
    "node-memory": "Node 0.3.7 memory",
    "node-datadir": "Node 0.3.7 dataDir",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Machine description and CPU pinning
# --------------------------------------------------------------------------------------------


def _run_quiet(cmd: list[str], timeout: float = 10) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding `path` (fsync on tmpfs would measure nothing)."""
    try:
        best, best_type = "", "unknown"
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")):
                if len(parts[1]) >= len(best):
                    best, best_type = parts[1], parts[2]
        return f"{best_type} (mount {best})"
    except OSError:
        return "unknown"


def machine_info(data_root: Path) -> dict:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _run_quiet(["node", "--version"]),
        "wrk": _run_quiet(["wrk", "--version"]).splitlines()[0] if shutil.which("wrk") else "missing",
        "data_fs": fs_type(data_root),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_start": os.getloadavg(),
    }


@dataclass
class Pinning:
    enabled: bool
    server_cpu: int | None = None
    load_cpu: int | None = None
    note: str = ""

    def load_prefix(self) -> list[str]:
        return ["taskset", "-c", str(self.load_cpu)] if self.enabled else []

    def server_prefix(self) -> list[str]:
        return ["taskset", "-c", str(self.server_cpu)] if self.enabled else []

    def pin_running(self, pid: int) -> None:
        """Pin every thread of a running server (later threads inherit the mask)."""
        if self.enabled:
            subprocess.run(
                ["taskset", "-a", "-p", "-c", str(self.server_cpu), str(pid)],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=10,
            )


def choose_pinning(args) -> Pinning:
    if args.no_pin:
        return Pinning(False, note="pinning disabled (--no-pin)")
    if shutil.which("taskset") is None:
        return Pinning(False, note="taskset not found: nothing pinned (apt-get install -y util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Pinning(False, note=f"only {len(cpus)} CPU available: nothing pinned")
    server_cpu = args.server_cpu if args.server_cpu is not None else cpus[-1]
    load_cpu = args.load_cpu if args.load_cpu is not None else cpus[0]
    if server_cpu == load_cpu:
        raise SystemExit("--server-cpu and --load-cpu must differ")
    return Pinning(
        True,
        server_cpu,
        load_cpu,
        f"server (all threads) on CPU {server_cpu}; wrk, the long-poll client and this script on CPU {load_cpu}",
    )


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _proc_status_kib(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class OursServer:
    key = "ours"

    def __init__(self, data_root: Path, out_dir: Path, pinning: Pinning, fsync: str) -> None:
        self.data_root, self.out_dir, self.pinning, self.fsync = data_root, out_dir, pinning, fsync
        self.proc: subprocess.Popen | None = None
        self.tmp: str | None = None
        self.log_path = out_dir / "ours.log"
        self._log = None
        self._drain: threading.Thread | None = None

    def command(self) -> list[str]:
        exe = REPO / ".venv" / "bin" / "plugin-streams"
        binary = str(exe) if exe.exists() else (shutil.which("plugin-streams") or str(exe))
        cmd = [binary, "origin", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(self.tmp)]
        cmd += ["--long-poll-timeout", str(LONG_POLL_TIMEOUT_S)]
        if self.fsync != "always":
            cmd += ["--fsync", self.fsync]
        return cmd

    def start(self) -> str:
        self.tmp = tempfile.mkdtemp(prefix="ds-bench-ours-", dir=self.data_root)
        self.log_path.write_bytes(b"")  # a fresh log per run (it is scanned for errors afterwards)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            self.pinning.server_prefix() + self.command(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,  # a Ctrl-C in our terminal reaches us, not the server
        )
        url = self._wait_for_url(timeout_s=60)
        # keep draining stdout into the log so the server can never block on a full pipe
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return url

    def _wait_for_url(self, timeout_s: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode("utf-8", "replace").splitlines():
                    if line.startswith("SERVER_URL="):
                        assert self._log is not None
                        self._log.write(buf)
                        self._log.flush()
                        return line.split("=", 1)[1].strip().rstrip("/")
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"our origin did not print SERVER_URL (see {self.log_path})")

    def _drain_stdout(self) -> None:
        proc, logf = self.proc, self._log
        if proc is None or proc.stdout is None or logf is None:
            return
        with contextlib.suppress(OSError, ValueError):
            for line in proc.stdout:
                logf.write(line)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def stop(self) -> int | None:
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait(timeout=10)
            else:
                rc = proc.returncode
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return rc


class NodeServer:
    def __init__(self, file_mode: bool, data_root: Path, out_dir: Path, pinning: Pinning) -> None:
        self.file_mode = file_mode
        self.key = "node-datadir" if file_mode else "node-memory"
        self.data_root, self.out_dir, self.pinning = data_root, out_dir, pinning
        self.node = None
        self.tmp: str | None = None
        self.log_path = out_dir / f"{self.key}.log"

    def start(self) -> str:
        if str(CONFORMANCE_DIR) not in sys.path:
            sys.path.insert(0, str(CONFORMANCE_DIR))
        from node_reference import NodeReferenceServer  # tests/conformance/node_reference.py
        from run_suite import ensure_installed

        ensure_installed()
        self.log_path.write_bytes(b"")  # NodeReferenceServer appends; start from an empty log
        if self.file_mode:
            self.tmp = tempfile.mkdtemp(prefix="ds-bench-node-", dir=self.data_root)
        self.node = NodeReferenceServer(
            data_dir=self.tmp,  # None: in-memory
            long_poll_ms=LONG_POLL_TIMEOUT_S * 1000,
            compression=False,
            log_path=self.log_path,
        )
        url = self.node.start()
        try:
            self.pinning.pin_running(self.node.proc.pid)
        except (OSError, subprocess.SubprocessError):
            self.stop()
            raise
        return url

    @property
    def pid(self) -> int | None:
        return self.node.proc.pid if self.node is not None and self.node.proc is not None else None

    def alive(self) -> bool:
        return self.node is not None and self.node.running

    def returncode(self) -> int | None:
        proc = self.node.proc if self.node is not None else None
        return proc.returncode if proc is not None else None

    def stop(self) -> int | None:
        rc = None
        if self.node is not None:
            proc = self.node.proc
            if proc is not None and proc.poll() is not None:
                rc = proc.returncode
            self.node.stop()
            self.node = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return rc


# --------------------------------------------------------------------------------------------
# Small HTTP client for setup and verification (never timed)
# --------------------------------------------------------------------------------------------


class Http:
    def __init__(self, base_url: str, timeout: float = 30) -> None:
        parts = urlsplit(base_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit("refusing a non-loopback server URL")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                hdrs = {k.lower(): v for k, v in resp.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return resp.status, hdrs, data
            except (ConnectionError, http.client.HTTPException, OSError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def create_stream(http_: Http, path: str, content_type: str) -> str:
    status, hdrs, body = http_.request("PUT", path, headers={"Content-Type": content_type})
    if status != 201:
        raise RuntimeError(f"PUT {path} -> {status} {body[:200]!r}")
    offset = hdrs.get("stream-next-offset")
    if not offset:
        raise RuntimeError(f"PUT {path}: no Stream-Next-Offset")
    return offset


def count_records(http_: Http, path: str, content_type: str, record_bytes: int) -> int:
    """Records in the stream, read back from the start (bounded in requests and time)."""
    offset, total, deadline = "-1", 0, time.monotonic() + 120
    for _ in range(200_000):
        if time.monotonic() > deadline:
            raise RuntimeError("read-back took longer than 120 s")
        status, hdrs, body = http_.request("GET", f"{path}?offset={quote(offset, safe='')}")
        if status != 200:
            raise RuntimeError(f"read-back GET -> {status}")
        if content_type == JSON_CT:
            total += len(json.loads(body)) if body else 0
        else:
            total += len(body)
        nxt = hdrs.get("stream-next-offset", offset)
        if hdrs.get("stream-up-to-date", "").lower() == "true" or nxt == offset:
            break
        offset = nxt
    return total if content_type == JSON_CT else total // record_bytes


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class CaseResult:
    name: str
    kind: str  # append | catchup | longpoll
    ok: bool = True
    rate: float | None = None  # appends/s or reads/s
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu_pct: float | None = None
    load_cpu_pct: float | None = None
    server_cpu_us_per_op: float | None = None  # server CPU time per append / read / delivery
    problems: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def run_wrk(
    url: str, lua: Path, lua_args: list[str], conns: int, duration: int, pinning: Pinning, server, raw_path: Path
) -> tuple[dict, float | None, float | None]:
    """Run wrk with N threads = N connections; return (BENCH_RESULT dict, server CPU %, wrk CPU %)."""
    cmd = [
        *pinning.load_prefix(),
        "wrk",
        "-t",
        str(conns),
        "-c",
        str(conns),
        "-d",
        f"{duration}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(lua),
        url,
        "--",
        *lua_args,
    ]
    cpu0 = _proc_cpu_seconds(server.pid) if server.pid else None
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu1 = _proc_cpu_seconds(server.pid) if server.pid else None
    raw_path.write_text(" ".join(cmd) + "\n\n" + proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {proc.stderr.strip()[:300]} (see {raw_path})")
    result = json.loads(match.group(1))
    result["server_cpu_s"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    result["wall_s"] = wall
    result["load_cpu_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    server_pct = 100 * result["server_cpu_s"] / wall if result["server_cpu_s"] is not None else None
    load_pct = 100 * result["load_cpu_s"] / wall
    return result, server_pct, load_pct


def _socket_errors(r: dict) -> int:
    return r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]


def read_back_problem(stored: int, acknowledged: int, conns: int, batch: int = 1) -> str | None:
    """What is wrong with a stream that holds `stored` messages after `acknowledged` appends of
    `batch` messages each on `conns` connections (None: nothing). wrk stops with up to `conns`
    requests in flight, and the server may store those too."""
    if acknowledged * batch <= stored <= (acknowledged + conns) * batch:
        return None
    each = f" of {batch} messages" if batch > 1 else ""
    return f"stream holds {stored} records but {acknowledged} appends{each} were acknowledged"


def append_case(server, url, ctx, ctype: str, producer: bool, conns: int, batch: int = 1) -> CaseResult:
    """Appends of 100-byte messages; with `batch` > 1, JSON POSTs of `batch` messages each
    (bench/lua/append_batch.lua), and `rate` counts messages/s."""
    kind = "JSON" if ctype == JSON_CT else "binary"
    name = f"{kind}{' + producer' if producer else ''}, c={conns}"
    slug = f"{kind.lower()}-{'prod' if producer else 'plain'}-c{conns}"
    lua, lua_args = LUA_DIR / "append.lua", [ctype, "1" if producer else "0"]
    if batch > 1:
        name, slug = f"JSON batches of {batch}, c={conns}", f"json-batch{batch}-c{conns}"
        lua, lua_args = LUA_DIR / "append_batch.lua", []
    res = CaseResult(name, "append")
    run_id = f"{server.key}-{slug}-{uuid.uuid4().hex[:8]}"
    path = f"/v1/stream/bench-{run_id}"
    http_ = Http(url)
    try:
        create_stream(http_, path, ctype)
        r, spct, lpct = run_wrk(
            url + path,
            lua,
            [*lua_args, run_id, *([str(batch)] if batch > 1 else [])],
            conns,
            ctx.duration,
            ctx.pinning,
            server,
            ctx.out_dir / f"{server.key}-{slug}.wrk.txt",
        )
        res.raw = r
        secs = r["duration_us"] / 1e6
        ok = r["s200"] + r["s204"] + r["s2xx_other"]
        res.rate = ok * batch / secs if secs > 0 else None
        res.p50_ms, res.p99_ms = r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000
        res.server_cpu_pct, res.load_cpu_pct = spct, lpct
        if r["server_cpu_s"] is not None and r["requests"]:
            res.server_cpu_us_per_op = 1e6 * r["server_cpu_s"] / (r["requests"] * batch)
        bad = r["requests"] - ok
        if bad:
            detail = ", ".join(
                f"{n} x {k}" for k, n in (("409", r["s409"]), ("4xx", r["s4xx"]), ("5xx", r["s5xx"])) if n
            )
            res.problems.append(f"{bad} non-2xx responses ({detail})")
        if _socket_errors(r):
            res.problems.append(
                f"socket errors: connect {r['err_connect']}, read {r['err_read']}, "
                f"write {r['err_write']}, timeout {r['err_timeout']}"
            )
        if producer and r["s204"]:
            res.problems.append(f"{r['s204']} producer appends answered 204 (duplicate) instead of 200")
        if server.alive():
            stored = count_records(http_, path, ctype, 100)
            res.raw["records_stored"] = stored
            problem = read_back_problem(stored, ok, conns, batch)
            if problem:
                res.problems.append(problem)
    except Exception as exc:  # a failed case must not hide the others
        res.ok = False
        res.problems.append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def fill_for_catchup(http_: Http, path: str) -> tuple[str, str, dict]:
    """Fill a binary stream with FILL_APPENDS appends of 1 KiB; return (label, offset, headers) of
    the first server-returned offset from which one catch-up GET returns exactly 64 KiB.

    Ours cuts reads at 64 KiB boundaries, so the stream's start offset gives one complete
    (immutable) chunk; Node has no chunking and returns everything up to the tail, so for Node
    it is the offset returned 64 appends (64 KiB) before the end.
    """
    offsets = [create_stream(http_, path, BINARY_CT)]
    block = bytes(range(256)) * 4  # 1 KiB
    for _ in range(FILL_APPENDS):
        status, hdrs, body = http_.request("POST", path, body=block, headers={"Content-Type": BINARY_CT})
        if status not in (200, 204) or "stream-next-offset" not in hdrs:
            raise RuntimeError(f"fill append -> {status} {body[:200]!r}")
        offsets.append(hdrs["stream-next-offset"])
    for label, offset in (("stream start", offsets[0]), ("64 KiB before the tail", offsets[-1 - CHUNK // 1024])):
        status, hdrs, body = http_.request("GET", f"{path}?offset={quote(offset, safe='')}")
        if status == 200 and len(body) == CHUNK:
            return label, offset, hdrs
    raise RuntimeError("no returned offset gives a 64 KiB catch-up response")


def catchup_case(server, url, ctx, conns: int = 16) -> CaseResult:
    res = CaseResult(f"catch-up 64 KiB, c={conns}", "catchup")
    run_id = f"{server.key}-catchup-{uuid.uuid4().hex[:8]}"
    path = f"/v1/stream/bench-{run_id}"
    http_ = Http(url)
    try:
        chosen = fill_for_catchup(http_, path)
        res.raw["read_from"] = chosen[0]
        r, spct, lpct = run_wrk(
            f"{url}{path}?offset={quote(chosen[1], safe='')}",
            LUA_DIR / "read.lua",
            [str(CHUNK)],
            conns,
            ctx.duration,
            ctx.pinning,
            server,
            ctx.out_dir / f"{server.key}-catchup.wrk.txt",
        )
        res.raw.update(r)
        secs = r["duration_us"] / 1e6
        res.rate = r["good"] / secs if secs > 0 else None
        res.p50_ms, res.p99_ms = r["lat_p50_us"] / 1000, r["lat_p99_us"] / 1000
        res.server_cpu_pct, res.load_cpu_pct = spct, lpct
        if r["server_cpu_s"] is not None and r["requests"]:
            res.server_cpu_us_per_op = 1e6 * r["server_cpu_s"] / r["requests"]
        if r["bad_status"] or r["bad_size"]:
            res.problems.append(f"{r['bad_status']} non-200 and {r['bad_size']} wrong-size responses (not counted)")
        if _socket_errors(r):
            res.problems.append(
                f"socket errors: connect {r['err_connect']}, read {r['err_read']}, "
                f"write {r['err_write']}, timeout {r['err_timeout']}"
            )
    except Exception as exc:
        res.ok = False
        res.problems.append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def longpoll_case(server, url, ctx) -> CaseResult:
    res = CaseResult(f"long-poll fan-out, {ctx.lp_readers} readers", "longpoll")
    run_id = f"{server.key}-lp-{uuid.uuid4().hex[:8]}"
    path = f"/v1/stream/bench-{run_id}"
    http_ = Http(url)
    try:
        tail = create_stream(http_, path, JSON_CT)
        http_.close()
        # The writer waits for each ack, so a slow server stretches the run; cap it.
        max_write = max(30.0, ctx.lp_appends * ctx.lp_interval * 6)
        cmd = [
            *ctx.pinning.load_prefix(),
            sys.executable,
            str(BENCH_DIR / "longpoll_client.py"),
            "--url",
            url,
            "--path",
            path,
            "--offset",
            tail,
            "--readers",
            str(ctx.lp_readers),
            "--appends",
            str(ctx.lp_appends),
            "--interval",
            str(ctx.lp_interval),
            "--drain",
            str(LONG_POLL_TIMEOUT_S + 2),
            "--max-write-s",
            str(max_write),
        ]
        cpu0 = _proc_cpu_seconds(server.pid) if server.pid else None
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        # bound: connecting + settling + capped writer (+ one 10 s ack timeout) + drain + read-back
        limit = 60 + 1 + max_write + 10 + LONG_POLL_TIMEOUT_S + 2 + 60 + 30
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, stdin=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = _proc_cpu_seconds(server.pid) if server.pid else None
        (ctx.out_dir / f"{server.key}-longpoll.txt").write_text(
            " ".join(cmd) + "\n\n" + proc.stdout + "\n--- stderr ---\n" + proc.stderr
        )
        match = re.search(r"^LP_RESULT (\{.*\})$", proc.stdout, re.M)
        if proc.returncode != 0 or not match:
            raise RuntimeError(f"long-poll client failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
        r = json.loads(match.group(1))
        res.raw = r
        lat = r["latency_ms"]
        res.p50_ms, res.p99_ms = lat.get("p50"), lat.get("p99")
        res.server_cpu_pct = 100 * (cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None
        if res.server_cpu_pct is not None and r["deliveries"]:
            res.server_cpu_us_per_op = 1e6 * (cpu1 - cpu0) / r["deliveries"]
        res.load_cpu_pct = 100 * ((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) / wall
        res.raw["server_rss_mib"] = (_proc_status_kib(server.pid, "VmRSS") or 0) / 1024 if server.pid else None
        if r["missed"]:
            res.problems.append(
                f"{r['missed']} of {r['expected_deliveries']} deliveries missed "
                f"({r['readers_incomplete']} readers incomplete)"
            )
        if r["duplicates"]:
            res.problems.append(f"{r['duplicates']} duplicate deliveries")
        if r["status_errors"]:
            res.problems.append(f"reader error statuses: {r['status_errors']}")
        if r["writer_errors"]:
            res.problems.append(f"writer errors: {r['writer_errors']}")
        if r["writer_gave_up"]:
            res.problems.append(
                f"writer stopped after {r['appends_sent']} of {r['appends']} appends ({max_write:.0f} s cap)"
            )
        if r["appends_stored"] != r["appends_sent"]:
            res.problems.append(f"{r['appends_sent']} appends sent, {r['appends_stored']} in the stream")
        if r["reconnects"] or r["connect_failures"]:
            res.problems.append(f"{r['reconnects']} reader reconnects, {r['connect_failures']} connect failures")
        if r["bad_bodies"] or r["foreign_messages"]:
            res.problems.append(f"{r['bad_bodies']} unparsable bodies, {r['foreign_messages']} unexpected messages")
    except Exception as exc:
        res.ok = False
        res.problems.append(f"case failed: {exc}")
    finally:
        http_.close()
    return res


def warmup(server, url, ctx) -> None:
    """A short unmeasured append + read load, so Node's JIT and our caches are warm."""
    if ctx.warmup <= 0:
        return
    http_ = Http(url)
    try:
        path = f"/v1/stream/bench-warmup-{uuid.uuid4().hex[:8]}"
        create_stream(http_, path, BINARY_CT)
        run_wrk(
            url + path,
            LUA_DIR / "append.lua",
            [BINARY_CT, "0", "warmup"],
            16,
            ctx.warmup,
            ctx.pinning,
            server,
            ctx.out_dir / f"{server.key}-warmup.wrk.txt",
        )
    except Exception as exc:
        log(f"  warm-up failed (ignored): {exc}")
    finally:
        http_.close()


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    duration: int
    concurrency: list[int]
    warmup: int
    lp_readers: int
    lp_appends: int
    lp_interval: float
    pinning: Pinning
    out_dir: Path
    data_root: Path
    cases: tuple[str, ...] = CASE_KINDS


def make_server(key: str, ctx: Ctx, args):
    if key == "ours":
        return OursServer(ctx.data_root, ctx.out_dir, ctx.pinning, args.ours_fsync)
    return NodeServer(key == "node-datadir", ctx.data_root, ctx.out_dir, ctx.pinning)


def accepting(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=5):
            return True
    except OSError:
        return False


def scan_log(path: Path) -> list[str]:
    """Tracebacks and ERROR/CRITICAL lines in a server log (first few)."""
    found: list[str] = []
    try:
        for line in path.read_text(errors="replace").splitlines():
            if "Traceback" in line or re.search(r"\b(ERROR|CRITICAL)\b", line):
                found.append(line.strip()[:240])
    except OSError:
        pass
    return found


def stop_and_check(server) -> list[str]:
    """Stop a server started by a benchmark (SIGTERM) and say what went wrong: an exit status other
    than a clean one, error or traceback lines in its log."""
    problems = []
    rc = server.stop()
    if rc not in (0, None, -signal.SIGTERM):
        problems.append(f"{server.key} exit status {rc} after SIGTERM (0 expected)")
    found = scan_log(server.log_path)
    if found:
        problems.append(f"{len(found)} error/traceback lines in {server.log_path.name}: {found[:3]}")
    return problems


def bench_server(key: str, ctx: Ctx, args) -> dict:
    server = make_server(key, ctx, args)
    out: dict = {"key": key, "label": SERVER_LABELS[key], "cases": {}, "problems": []}
    log(f"starting {SERVER_LABELS[key]}")
    url = server.start()
    out["url"] = url
    log(f"  {url} (pid {server.pid})")
    try:
        warmup(server, url, ctx)
        plan: list[tuple] = []
        if "appends" in ctx.cases:
            plan += [
                ("append", ct, prod, c)
                for ct in (JSON_CT, BINARY_CT)
                for prod in (False, True)
                for c in ctx.concurrency
            ]
        if "catchup" in ctx.cases:
            plan.append(("catchup",))
        if "longpoll" in ctx.cases:
            plan.append(("longpoll",))
        for step in plan:
            if not server.alive():
                out["problems"].append(f"server exited (status {server.returncode()}) before: {step}")
                break
            if not accepting(url):
                out["problems"].append(f"server no longer accepts connections before: {step}")
                break
            if step[0] == "append":
                res = append_case(server, url, ctx, step[1], step[2], step[3])
            elif step[0] == "catchup":
                res = catchup_case(server, url, ctx)
            else:
                res = longpoll_case(server, url, ctx)
            out["cases"][res.name] = res.__dict__
            rate = f"{res.rate:,.0f}/s, " if res.rate is not None else ""
            flag = f"  PROBLEMS: {'; '.join(res.problems)}" if res.problems else ""
            log(f"  {res.name}: {rate}p50 {fmt_ms(res.p50_ms)} ms, p99 {fmt_ms(res.p99_ms)} ms{flag}")
        if server.pid:
            out["server_peak_rss_mib"] = (_proc_status_kib(server.pid, "VmHWM") or 0) / 1024
        if not server.alive():
            out["problems"].append("server process died during the run")
    finally:
        if key == "ours" and "stopping: draining" in server.log_path.read_text(errors="replace"):
            out["problems"].append(
                "the server received SIGTERM/SIGINT from outside this script during the run "
                "(its log says 'stopping: draining live connections' before we stopped it)"
            )
        out["problems"] += stop_and_check(server)
        log(f"stopped {SERVER_LABELS[key]}")
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def cell(case: dict | None, marks: dict) -> str:
    if case is None:
        return "n/a"
    if not case["ok"]:
        text = "failed"
    else:
        text = f"{fmt_rate(case['rate'])} · {fmt_ms(case['p50_ms'])} / {fmt_ms(case['p99_ms'])}"
    if case["problems"]:
        n = marks.setdefault("_n", 0) + 1
        marks["_n"] = n
        marks[n] = case["problems"]
        text += f" ⚠{n}"
    return text


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def report(results: list[dict], machine: dict, ctx: Ctx, args, elapsed_s: float) -> str:
    keys = [r["key"] for r in results]
    by_key = {r["key"]: r for r in results}
    labels = [SERVER_LABELS[k] for k in keys]
    marks: dict = {}
    lines: list[str] = []
    add = lines.append

    add("## Origin benchmark: plugin-streams vs Node reference (`@durable-streams/server` 0.3.7)")
    add("")
    mode = "quick smoke run" if args.quick else "full run"
    add(
        f"*{mode}: {ctx.duration} s per case, {ctx.warmup} s warm-up per server, "
        f"long-poll {ctx.lp_readers} readers x {ctx.lp_appends} appends; {machine['date']}; "
        f"total {elapsed_s / 60:.1f} min.*"
    )
    add("")
    load_end = os.getloadavg()
    add(
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['mem_gib']} GiB RAM, "
        f"Linux {machine['kernel']}; Python {machine['python']}, Node {machine['node']}, {machine['wrk']}. "
        f"Data dirs on {machine['data_fs']}. Load average at start {machine['loadavg_start'][0]:.2f}, "
        f"at end {load_end[0]:.2f}. Pinning: {ctx.pinning.note}."
    )
    add("")
    add(
        "Servers run one at a time. Ours: file engine, `--fsync always` (fdatasync before every ack). "
        "Node memory: no durability. Node dataDir: file segments + LMDB, fsync per append. "
        "Long-poll timeout 5 s everywhere, compression off."
    )
    add("")
    case_names = []
    if "appends" in ctx.cases:
        for ct in ("JSON", "binary"):
            for prod in (False, True):
                for c in ctx.concurrency:
                    case_names.append(f"{ct}{' + producer' if prod else ''}, c={c}")
    cu_name = "catch-up 64 KiB, c=16"
    lp_name = f"long-poll fan-out, {ctx.lp_readers} readers"

    def lp(k):
        return by_key[k]["cases"].get(lp_name)

    if "appends" in ctx.cases:
        add("### Appends: 100-byte bodies, one fresh stream per case")
        add("")
        add("Cells: **appends/s · p50 / p99 latency (ms)**; wrk closed loop, N connections (one producer each).")
        add("")
        add("| Case | " + " | ".join(labels) + " |")
        add("|---" * (len(keys) + 1) + "|")
        for name in case_names:
            add(f"| {name} | " + " | ".join(cell(by_key[k]["cases"].get(name), marks) for k in keys) + " |")
        add("")
    if "catchup" in ctx.cases:
        add("### Catch-up reads: one 64 KiB response per GET, 16 connections")
        add("")
        add(
            "Cells: **reads/s · p50 / p99 latency (ms)**; non-2xx answers don't count; "
            "bytes per response must fit a 65,536-byte body."
        )
        add("")
        add("| Case | " + " | ".join(labels) + " |")
        add("|---" * (len(keys) + 1) + "|")
        add(
            "| catch-up 64 KiB, c=16 | " + " | ".join(cell(by_key[k]["cases"].get(cu_name), marks) for k in keys) + " |"
        )
        add(
            "| read from | "
            + " | ".join(str(by_key[k]["cases"].get(cu_name, {}).get("raw", {}).get("read_from", "-")) for k in keys)
            + " |"
        )
        add("")
    if "longpoll" in ctx.cases:
        add(
            f"### Long-poll fan-out: {ctx.lp_readers} readers on one stream, "
            f"1 writer every {ctx.lp_interval * 1000:.0f} ms"
        )
        add("")
        add("| Figure | " + " | ".join(labels) + " |")
        add("|---" * (len(keys) + 1) + "|")

        def lp_row(title, fn):
            vals = []
            for k in keys:
                case = lp(k)
                vals.append("n/a" if case is None else ("failed" if not case["ok"] else fn(case)))
            add(f"| {title} | " + " | ".join(vals) + " |")

        def lat(case, key="latency_ms"):
            s = case["raw"][key]
            return f"{fmt_ms(s.get('p50'))} / {fmt_ms(s.get('p99'))} / {fmt_ms(s.get('max'))}"

        def lp_cell(case):
            text = lat(case)
            if case["problems"]:
                n = marks.setdefault("_n", 0) + 1
                marks["_n"] = n
                marks[n] = case["problems"]
                text += f" ⚠{n}"
            return text

        lp_row("delivery latency p50 / p99 / max (ms)", lp_cell)
        lp_row(
            "deliveries missed / expected",
            lambda c: f"{c['raw']['missed']:,} / {c['raw']['expected_deliveries']:,}",
        )
        lp_row(
            "appends sent / stored",
            lambda c: f"{c['raw']['appends_sent']} / {c['raw']['appends_stored']}",
        )
        lp_row(
            "writer append p50 / p99 (ms); mean interval",
            lambda c: (
                f"{fmt_ms(c['raw']['writer_append_ms'].get('p50'))} / {fmt_ms(c['raw']['writer_append_ms'].get('p99'))}"
                f"; {(c['raw']['write_interval_mean_s'] or 0) * 1000:.0f} ms"
            ),
        )
        lp_row("client-side latency p50 / p99 / max (ms)", lambda c: lat(c, "latency_user_ms"))
        lp_row(
            "server CPU; RSS after",
            lambda c: (
                f"{c['server_cpu_pct']:.0f}%; {c['raw'].get('server_rss_mib') or 0:.0f} MiB"
                if c["server_cpu_pct"] is not None
                else "-"
            ),
        )
        add("")

    # Ratios and targets
    cmax = 64 if 64 in ctx.concurrency else max(ctx.concurrency)
    add("### Key figures, ratios and targets")
    add("")
    head = ["Figure", *labels]
    have_mem, have_dd = "node-memory" in by_key, "node-datadir" in by_key
    if "ours" in by_key and have_mem:
        head.append("ours / Node memory")
    if "ours" in by_key and have_dd:
        head.append("ours / Node dataDir")
    head += ["Target", "Met?"]
    add("| " + " | ".join(head) + " |")
    add("|---" * len(head) + "|")

    def rate_of(k, name):
        case = by_key.get(k, {}).get("cases", {}).get(name) if k in by_key else None
        return case["rate"] if case and case["ok"] else None

    verdicts = []
    figures = [(f"appends/s, {n}", n, "append") for n in case_names if n.endswith(f"c={cmax}")]
    if "catchup" in ctx.cases:
        figures.append(("catch-up reads/s (64 KiB)", cu_name, "catchup"))
    for title, name, kind in figures:
        vals = {k: rate_of(k, name) for k in keys}
        r_mem = ratio(vals.get("ours"), vals.get("node-memory"))
        r_dd = ratio(vals.get("ours"), vals.get("node-datadir"))
        row = [title, *(fmt_rate(vals[k]) for k in keys)]
        if "ours" in by_key and have_mem:
            row.append(fmt_ratio(r_mem))
        if "ours" in by_key and have_dd:
            row.append(fmt_ratio(r_dd))
        if kind == "append":
            target = "≥ 2x dataDir and ≥ 0.5x memory"
            checks = [(r_dd, 2.0), (r_mem, 0.5)]
        else:
            target = "≥ 1x Node (both modes)"
            checks = [(r_dd, 1.0), (r_mem, 1.0)]
        known = [(r, t) for r, t in checks if r is not None]
        if "ours" not in by_key or not known:
            met = "n/a"
        else:
            met = "yes" if all(r >= t for r, t in known) else "**no**"
            if len(known) < len(checks):
                met += " (partial: a Node mode is missing)"
        verdicts.append((title, met))
        row += [target, met]
        add("| " + " | ".join(row) + " |")
    if "longpoll" in ctx.cases:
        lp_vals = {k: lp(k)["p99_ms"] if lp(k) and lp(k)["ok"] else None for k in keys}
        row = ["long-poll delivery p99 ms (lower is better)", *(fmt_ms(lp_vals[k]) for k in keys)]
        if "ours" in by_key and have_mem:
            row.append(fmt_ratio(ratio(lp_vals.get("ours"), lp_vals.get("node-memory"))))
        if "ours" in by_key and have_dd:
            row.append(fmt_ratio(ratio(lp_vals.get("ours"), lp_vals.get("node-datadir"))))
        row += ["(none)", "-"]
        add("| " + " | ".join(row) + " |")
    add("")
    judged = [(t, m) for t, m in verdicts if m != "n/a"]
    if judged:
        met = [t for t, m in judged if m.startswith("yes")]
        missed = [t for t, m in judged if not m.startswith("yes")]
        add(
            f"Targets met: {len(met)} of {len(judged)}"
            + (f"; not met: {', '.join(missed)}." if missed else ".")
            + (" (Smoke run on a shared machine: indicative only.)" if args.quick else "")
        )
        add("")

    # Diagnostics
    add("<details><summary>Diagnostics: CPU use per case</summary>")
    add("")
    add(
        "Cells: **server CPU % / load-generator CPU % · server CPU time per operation** (per append, per "
        "read, per long-poll delivery). CPU % = CPU time / wall time of the case, 100% = one core. A server "
        "well under 100% while latency grows is waiting (disk, locks) or sharing its core with something "
        "else; a load generator near 100% would mean the generator limits the result."
    )
    add("")
    add("| Case | " + " | ".join(labels) + " |")
    add("|---" * (len(keys) + 1) + "|")
    for name in [*case_names, cu_name, lp_name]:
        if all(by_key[k]["cases"].get(name) is None for k in keys):
            continue
        vals = []
        for k in keys:
            case = by_key[k]["cases"].get(name)
            if case is None or case["server_cpu_pct"] is None:
                vals.append("-")
            else:
                per_op = case.get("server_cpu_us_per_op")
                extra = f" · {per_op:,.0f} µs" if per_op is not None else ""
                vals.append(f"{case['server_cpu_pct']:.0f}% / {case['load_cpu_pct']:.0f}%{extra}")
        add(f"| {name} | " + " | ".join(vals) + " |")
    add(
        "| peak server RSS | "
        + " | ".join(
            f"{by_key[k].get('server_peak_rss_mib'):.0f} MiB" if by_key[k].get("server_peak_rss_mib") else "-"
            for k in keys
        )
        + " |"
    )
    add("")
    add("</details>")
    add("")

    problems = [(k, p) for k in keys for p in by_key[k]["problems"]]
    if marks.get("_n") or problems:
        add("**Problems observed**")
        add("")
        for n in range(1, marks.get("_n", 0) + 1):
            add(f"- ⚠{n}: " + "; ".join(marks[n]))
        for k, p in problems:
            add(f"- {SERVER_LABELS[k]}: {p}")
        add("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Compare the plugin-streams origin with the Node reference server (see bench/README.md)."
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per case, 20 long-poll appends")
    parser.add_argument("--duration", type=int, default=None, help="seconds per wrk case (default 10; --quick: 2)")
    parser.add_argument("--concurrency", default="1,16,64", help="append concurrencies (default 1,16,64)")
    parser.add_argument(
        "--servers", default=",".join(SERVER_KEYS), help=f"comma-separated subset of {','.join(SERVER_KEYS)}"
    )
    parser.add_argument(
        "--cases", default=",".join(CASE_KINDS), help=f"comma-separated subset of {','.join(CASE_KINDS)}"
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds per server (default 2; --quick: 1)")
    parser.add_argument("--lp-readers", type=int, default=1000, help="long-poll readers (default 1000)")
    parser.add_argument(
        "--lp-appends", type=int, default=None, help="long-poll writer appends (default 100; --quick: 20)"
    )
    parser.add_argument("--lp-interval", type=float, default=0.1, help="seconds between writer appends (0.1)")
    parser.add_argument("--ours-fsync", choices=("always", "never"), default="always", help="ours: --fsync (always)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator with taskset")
    parser.add_argument("--server-cpu", type=int, default=None, help="CPU for the server (default: the last one)")
    parser.add_argument("--load-cpu", type=int, default=None, help="CPU for the load generator (default: the first)")
    parser.add_argument("--data-root", default=None, help="where the servers' data dirs go (default: system temp dir)")
    parser.add_argument("--out", default=None, help="raw output directory (default bench/results/<timestamp>)")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print(
            "wrk is not installed. Install it with:\n"
            "    apt-get update && apt-get install -y wrk        # Debian/Ubuntu (as root)\n"
            "then re-run this script.",
            file=sys.stderr,
        )
        return 2
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SERVER_KEYS]
    if unknown or not keys:
        parser.error(f"unknown server(s) {unknown}; choose from {SERVER_KEYS}")
    cases = tuple(k.strip() for k in args.cases.split(",") if k.strip())
    if not cases or any(k not in CASE_KINDS for k in cases):
        parser.error(f"--cases: choose from {CASE_KINDS}")
    concurrency = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    if not concurrency or min(concurrency) < 1 or max(concurrency) > 512:
        parser.error("--concurrency values must be 1..512")
    duration = args.duration if args.duration is not None else (2 if args.quick else 10)
    if not 1 <= duration <= 600:
        parser.error("--duration must be 1..600 s")
    lp_appends = args.lp_appends if args.lp_appends is not None else (20 if args.quick else 100)
    if not (1 <= args.lp_readers <= 10000 and 1 <= lp_appends <= 10000 and 0.01 <= args.lp_interval <= 5):
        parser.error("long-poll parameters out of range")

    # The servers and the long-poll client inherit this (1,000 readers need > 1,024 fds).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.lp_readers + 1024))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.lp_readers + 256:
        log(f"warning: open-file limit {want} is low for {args.lp_readers} long-poll readers")

    pinning = choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})  # this script's own work stays off the server core
    data_root = Path(args.data_root or tempfile.gettempdir()).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out) if args.out else BENCH_DIR / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        duration=duration,
        concurrency=concurrency,
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        lp_readers=args.lp_readers,
        lp_appends=lp_appends,
        lp_interval=args.lp_interval,
        pinning=pinning,
        out_dir=out_dir,
        data_root=data_root,
        cases=cases,
    )
    machine = machine_info(data_root)
    log(
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), Linux {machine['kernel']}, Python {machine['python']}, "
        f"Node {machine['node']}, {machine['wrk']}; data on {machine['data_fs']}; {pinning.note}"
    )
    n_cases = 4 * len(concurrency) * ("appends" in cases) + ("catchup" in cases)
    lp_s = (ctx.lp_appends * ctx.lp_interval + 6) if "longpoll" in cases else 0
    est = len(keys) * (ctx.warmup + n_cases * (duration + 1.5) + lp_s)
    log(f"servers {keys}; {n_cases} wrk cases x {duration} s + long-poll each; estimated >= {est / 60:.1f} min")
    log(f"raw output in {out_dir}")

    t0 = time.monotonic()
    results = []
    for key in keys:
        try:
            results.append(bench_server(key, ctx, args))
        except Exception as exc:
            log(f"{key}: could not run: {exc}")
            results.append({"key": key, "label": SERVER_LABELS[key], "cases": {}, "problems": [f"not run: {exc}"]})
    elapsed = time.monotonic() - t0
    text = report(results, machine, ctx, args, elapsed)
    save_report(out_dir, text, {"machine": machine, "args": vars(args), "results": results}, elapsed)
    return 0


def save_report(out_dir: Path, text: str, results: dict, elapsed_s: float) -> None:
    """Write results.json and report.md under `out_dir`, print the report, say where it is."""
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "report.md").write_text(text + "\n")
    print(text)
    log(f"done in {elapsed_s / 60:.1f} min; report also in {out_dir / 'report.md'}")


if __name__ == "__main__":
    sys.exit(main())
