#!/usr/bin/env python3
"""Benchmark regions: reads at a regional replica vs across regions, and replication lag.

Two simulated regions on one machine: region A holds the origin (and the Node reference
server, for comparison); region B holds a replica (`plugin-streams edge --region b
--replicate '**'`) and the clients. Between the regions runs tests/support/delay_proxy.py with
a one-way delay (default 50 ms). Servers are pinned to one core, the proxy and the clients to
the other (as bench/compare_origin.py does).

1. Catch-up read latency of one complete 64 KiB chunk, sequential GETs on one keep-alive
   connection, p50/p99 from region B: at the replica; at the origin across regions; at Node
   across regions. And from region A (a local read): at the origin, at Node.
   Target: replica p50 within 5 ms of a local read at the origin.
2. Replication lag at 100 appends/s: a writer in region A appends to the origin (waiting for
   each acknowledgement, paced to 100/s); an SSE reader in region B reads the replica; lag =
   time the reader receives a message minus time the writer got its acknowledgement. For scale,
   the same for an SSE reader in region B reading the origin across regions. Also the
   replica's own histogram (origin accept → durable in the replica).
   Target: p99 ≤ one-way delay + 50 ms.

    .venv/bin/python bench/compare_regions.py [--delay 0.05] [--reads 300] [--seconds 30]

Prints a markdown report on stdout (progress on stderr); raw results and logs under --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import compare_origin as co  # noqa: E402  (servers, pinning, machine info, HTTP helper)

REPO = BENCH_DIR.parent
CLI = str(REPO / ".venv" / "bin" / "plugin-streams")
CHUNK = 64 * 1024
log = co.log


class Proc:
    """A child process that prints `<marker>=<value>` once it listens (a server, or the proxy)."""

    def __init__(self, name: str, cmd: list[str], out_dir: Path, marker: str) -> None:
        self.name, self.cmd, self.marker = name, cmd, marker
        self.log_path = out_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.value = ""

    def start(self) -> str:
        log_file = open(self.log_path, "ab")  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line and self.proc.poll() is not None:
                break
            if line.startswith(self.marker + "="):
                self.value = line.split("=", 1)[1].strip()
                threading.Thread(target=self._drain, daemon=True).start()
                return self.value
        raise SystemExit(f"{self.name} did not start; see {self.log_path}")

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def proxy(name: str, target_url: str, delay: float, out_dir: Path, pinning: co.Pinning) -> Proc:
    target = target_url.split("//", 1)[1]
    cmd = [*pinning.load_prefix(), sys.executable, "-m", "tests.support.delay_proxy", "--target", target]
    return Proc(name, [*cmd, "--delay", str(delay)], out_dir, "PROXY_PORT")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- case 1: catch-up read latency ------------------------------------------------------------


def prepare_chunks(base_url: str, *, closing_record: bool) -> str:
    """64 KiB in 16 KiB appends; returns the path+query that reads exactly those 64 KiB.

    With `closing_record` one more append follows, so that (on ours) the read from the start
    stops at the chunk boundary and is immutable; Node answers with everything it holds.
    """
    http = co.Http(base_url)
    path = "/v1/stream/bench/chunks"
    first = co.create_stream(http, path, "application/octet-stream")
    for i in range(5 if closing_record else 4):
        status, _, body = http.request(
            "POST", path, body=bytes([i]) * (16 * 1024), headers={"Content-Type": "application/octet-stream"}
        )
        assert status in (200, 204), (status, body[:200])
    http.close()
    return f"{path}?offset={first}"


def read_latencies(base_url: str, target: str, count: int) -> dict:
    http = co.Http(base_url)
    http.request("GET", target)  # connect (and, across regions, pay the handshake) before timing
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        status, _, body = http.request("GET", target)
        samples.append((time.perf_counter() - started) * 1000)
        assert status == 200 and len(body) == CHUNK, (status, len(body))
    http.close()
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "samples": len(samples)}


# -- case 2: replication lag ------------------------------------------------------------------


async def lag_case(origin_url: str, readers: dict[str, str], rate: float, seconds: float) -> dict:
    path = "/v1/stream/bench/lag"
    acked: dict[int, float] = {}
    received: dict[str, dict[int, float]] = {name: {} for name in readers}
    done = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        async with session.put(origin_url + path, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 201, r.status
            start_offset = r.headers["Stream-Next-Offset"]
        await asyncio.sleep(2.0)  # the replica learns of the stream and follows it

        async def read(name: str, base: str) -> None:
            params = {"offset": start_offset, "live": "sse"}
            while not done.is_set():
                async with session.get(base + path, params=params) as r:
                    assert r.status == 200, (name, r.status)
                    buffer = b""
                    while not done.is_set():
                        try:
                            async with asyncio.timeout(0.5):
                                chunk = await r.content.readany()
                        except TimeoutError:
                            continue
                        if not chunk:
                            break
                        now = time.perf_counter()
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            if line.startswith(b"data:") and line[5:6] == b"m":
                                for word in line[5:].split():
                                    received[name].setdefault(int(word[1:]), now)
                            elif line.startswith(b"data:{"):
                                params["offset"] = json.loads(line[5:])["streamNextOffset"]

        tasks = [asyncio.ensure_future(read(name, base)) for name, base in readers.items()]
        await asyncio.sleep(1.0)
        interval = 1.0 / rate
        started = time.perf_counter()
        seq = 0
        while time.perf_counter() - started < seconds:
            async with session.post(
                origin_url + path, data=f"m{seq} ".encode(), headers={"Content-Type": "text/plain"}
            ) as r:
                await r.read()
                assert r.status == 204, r.status
                acked[seq] = time.perf_counter()
            seq += 1
            await asyncio.sleep(max(0.0, started + seq * interval - time.perf_counter()))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(3.0)
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    out: dict = {"appends": seq, "rate": seq / elapsed}
    for name in readers:
        lags = [(received[name][s] - acked[s]) * 1000 for s in acked if s in received[name]]
        out[name] = {
            "p50_ms": percentile(lags, 0.5),
            "p99_ms": percentile(lags, 0.99),
            "max_ms": max(lags) if lags else float("nan"),
            "received": len(lags),
            "missing": len(acked) - len(lags),
        }
    return out


def histogram_quantile(metrics_text: str, name: str, q: float) -> tuple[float, int]:
    """An upper bound of the q-quantile from a Prometheus histogram (its bucket), and the count."""
    buckets = []
    for line in metrics_text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= q * total:
            return le, int(total)
    return float("nan"), int(total)


# -- orchestration ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.05, help="one-way delay between the regions (s)")
    parser.add_argument("--reads", type=int, default=300, help="sequential reads per read target")
    parser.add_argument("--seconds", type=float, default=30, help="duration of the lag case")
    parser.add_argument("--rate", type=float, default=100, help="appends per second in the lag case")
    parser.add_argument("--out", type=Path, default=None, help="directory for raw output")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and clients to cores")
    parser.add_argument("--server-cpu", type=int, default=None)
    parser.add_argument("--load-cpu", type=int, default=None)
    args = parser.parse_args()
    out_dir = args.out or BENCH_DIR / "results" / time.strftime("%Y%m%d-%H%M%S-regions")
    out_dir.mkdir(parents=True, exist_ok=True)
    pinning = co.choose_pinning(args)
    if pinning.enabled:
        os.sched_setaffinity(0, {pinning.load_cpu})
        pinning.note = (
            f"origin, replica and Node (all threads) on CPU {pinning.server_cpu}; "
            f"the delay proxies, the clients and this script on CPU {pinning.load_cpu}"
        )
    data_root = Path(tempfile.mkdtemp(prefix="ds-bench-regions-"))
    machine = co.machine_info(data_root)
    began = time.monotonic()
    started: list[Proc] = []
    node = co.NodeServer(False, data_root, out_dir, pinning)

    def launch(p: Proc) -> str:
        started.append(p)
        return p.start()

    try:
        origin = launch(
            Proc(
                "origin",
                [*pinning.server_prefix(), CLI, "origin", "--port", "0", "--data-dir", str(data_root / "origin")],
                out_dir,
                "SERVER_URL",
            )
        )
        link = f"http://127.0.0.1:{launch(proxy('link-origin', origin, args.delay, out_dir, pinning))}"
        replica = launch(
            Proc(
                "replica",
                [
                    *pinning.server_prefix(),
                    CLI,
                    "edge",
                    "--port",
                    "0",
                    "--origin",
                    link,
                    "--region",
                    "b",
                    "--replicate",
                    "**",
                    "--replica-dir",
                    str(data_root / "replica"),
                ],
                out_dir,
                "SERVER_URL",
            )
        )
        node_url = node.start()
        node_link = f"http://127.0.0.1:{launch(proxy('link-node', node_url, args.delay, out_dir, pinning))}"
        log(f"origin {origin}, replica {replica} (via {link}), node {node_url} (via {node_link})")

        target = prepare_chunks(origin, closing_record=True)
        node_target = prepare_chunks(node_url, closing_record=False)
        time.sleep(2.0)  # the replica copies the stream
        reads = {}
        for name, base, path in (
            ("replica, from region B (local)", replica, target),
            ("origin, from region A (local)", origin, target),
            ("origin, from region B (across)", link, target),
            ("Node, from region A (local)", node_url, node_target),
            ("Node, from region B (across)", node_link, node_target),
        ):
            log(f"reads: {name}")
            reads[name] = read_latencies(base, path, args.reads)
        log(f"lag: {args.rate:g} appends/s for {args.seconds:g} s")
        lag = asyncio.run(
            lag_case(
                origin,
                {"SSE reader in region B at the replica": replica, "SSE reader in region B at the origin": link},
                args.rate,
                args.seconds,
            )
        )
        text = scrape_metrics(replica)
        replica_p99, replica_count = histogram_quantile(text, "ds_region_replication_delay_seconds", 0.99)
    finally:
        for p in reversed(started):
            p.stop()
        node.stop()
    results = {"machine": machine, "delay_s": args.delay, "reads": reads, "lag": lag}
    results["replica_histogram"] = {"p99_bucket_s": replica_p99, "records": replica_count}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results, args, pinning, time.monotonic() - began))
    return 0


def scrape_metrics(base_url: str) -> str:
    http = co.Http(base_url)
    try:
        status, _, body = http.request("GET", "/metrics")
        assert status == 200, status
        return body.decode()
    finally:
        http.close()


def report(results: dict, args: argparse.Namespace, pinning: co.Pinning, elapsed: float) -> str:
    m = results["machine"]
    delay_ms = args.delay * 1000
    reads = results["reads"]
    local = reads["origin, from region A (local)"]["p50_ms"]
    replica = reads["replica, from region B (local)"]["p50_ms"]
    lines = [
        "### Regions benchmark: a replica 50 ms from its origin"
        if args.delay == 0.05
        else f"### Regions benchmark: a replica {delay_ms:g} ms from its origin",
        "",
        f"*{m['date']}; total {elapsed / 60:.1f} min; one-way delay {delay_ms:g} ms between the regions "
        f"(tests/support/delay_proxy.py); {args.reads} sequential reads per target; lag case "
        f"{results['lag']['appends']:,} appends at {results['lag']['rate']:.1f}/s.*",
        "",
        f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; Python {m['python']}, Node "
        f"{m['node']}. Load average (1 min) at start {m['loadavg_start'][0]:.2f}. Pinning: {pinning.note}.",
        "",
        "| Catch-up read of one complete 64 KiB chunk | p50 (ms) | p99 (ms) |",
        "|---|---|---|",
    ]
    for name, r in reads.items():
        lines.append(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    lag = results["lag"]
    lines += [
        "",
        "| Replication lag (ack at the origin → an SSE reader in region B receives) | p50 (ms) | p99 (ms) "
        "| max (ms) | missing |",
        "|---|---|---|---|---|",
    ]
    for name, r in lag.items():
        if isinstance(r, dict):
            lines.append(
                f"| {name} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['missing']} of "
                f"{lag['appends']:,} |"
            )
    hist = results["replica_histogram"]
    lines += [
        "",
        "The replica's own histogram (origin accept time → durable in the replica, "
        f"`ds_region_replication_delay_seconds`, {hist['records']:,} records): "
        f"p99 ≤ {hist['p99_bucket_s'] * 1000:g} ms (bucket bound).",
        "",
        "| Target | Result | Met? |",
        "|---|---|---|",
    ]
    read_ok = replica - local <= 5.0
    lines.append(
        f"| Catch-up p50 at the replica within 5 ms of a local read | {replica:.2f} vs {local:.2f} ms "
        f"(+{replica - local:.2f} ms) | {'yes' if read_ok else '**no**'} |"
    )
    across = reads["origin, from region B (across)"]["p50_ms"]
    lines.append(
        f"| The same read from the origin across regions pays the round trip | {across:.2f} ms "
        f"(round trip {2 * delay_ms:g} ms) | {'yes' if across >= 2 * delay_ms else '**no**'} |"
    )
    p99 = lag["SSE reader in region B at the replica"]["p99_ms"]
    bound = delay_ms + 50
    lines.append(
        f"| Replication lag p99 ≤ one-way delay + 50 ms ({bound:g} ms) | {p99:.1f} ms | "
        f"{'yes' if p99 <= bound else '**no**'} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
