"""bench/speed.py's rows, targets and markdown report (issue #16's table).

Every ratio and verdict is computed here from the measured figures of the run (results.json
keeps them), never written in: the only constant is the issue's own tail-read figure, used as
the "must not get slower" baseline when no ``--baseline`` results.json is given.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import catchup_walk as cw
import compare_origin as co

LABELS = {
    "ours": "ours (fsync always)",
    "ours-never": "ours --fsync never",
    "node-memory": "Node memory",
    "node-datadir": "Node dataDir",
}
#: the issue's figure for ours (empty reads at the tail, c=16), the baseline without --baseline
ISSUE_TAIL_READS_PER_S = 10_700.0
SLOWER_ALLOWED = 0.05
#: a load generator this busy may be what limits the figure (flagged in the CPU table)
GENERATOR_BUSY_PCT = 90


@dataclass(frozen=True)
class Row:
    case: str  # its name for --cases
    title: str
    kind: str  # append | walk | edge
    content_type: str
    conns: int
    unit: str  # of the figure
    op: str  # what CPU per operation is per
    batch: int = 1
    compare_with: str = ""  # edge rows: the Node row they are compared with


ROWS = [
    Row("binary-c64", "1. 100 B appends, binary, c=64", "append", co.BINARY_CT, 64, "appends/s", "append"),
    Row("json-c64", "2. 100 B appends, JSON, c=64", "append", co.JSON_CT, 64, "appends/s", "append"),
    Row("binary-c1", "3. 100 B appends, binary, c=1", "append", co.BINARY_CT, 1, "appends/s", "append"),
    Row("batch-c16", "4. JSON batches of 100 messages, c=16", "append", co.JSON_CT, 16, "msgs/s", "message", 100),
    Row("catchup-binary", "5. Catch-up of a whole 1 MiB binary stream, c=16", "walk", co.BINARY_CT, 16, "MB/s", "MiB"),
    Row("catchup-json", "6. Catch-up of a whole 1 MiB JSON stream, c=16", "walk", co.JSON_CT, 16, "MB/s", "MiB"),
    Row(
        "edge-binary",
        "7. Row 5 through one edge (cache warm)",
        "edge",
        co.BINARY_CT,
        16,
        "MB/s",
        "MiB",
        compare_with="catchup-binary",
    ),
    Row(
        "edge-json",
        "7. Row 6 through one edge (cache warm)",
        "edge",
        co.JSON_CT,
        16,
        "MB/s",
        "MiB",
        compare_with="catchup-json",
    ),
    Row("tail", "8. Empty read at the tail, c=16", "walk", co.BINARY_CT, 16, "reads/s", "read"),
]
ROW_BY_CASE = {row.case: row for row in ROWS}


def case_dict(
    *,
    ok: bool,
    rate: float | None = None,
    p50_ms: float | None = None,
    p99_ms: float | None = None,
    cpu_s: dict[str, float | None] | None = None,
    wall_s: float | None = None,
    ops: float = 0,
    verified: str = "",
    problems: list[str] | None = None,
    raw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One case's result, with the CPU shares and the CPU per operation derived from what was measured."""
    cpu = cpu_s or {}
    servers = [v for k, v in cpu.items() if k != "load" and v is not None]
    return {
        "ok": ok,
        "rate": rate,
        "p50_ms": p50_ms,
        "p99_ms": p99_ms,
        "cpu_s": cpu,
        "cpu_pct": {k: 100 * v / wall_s for k, v in cpu.items() if v is not None and wall_s},
        "wall_s": wall_s,
        "ops": ops,
        "server_cpu_us_per_op": 1e6 * sum(servers) / ops if ops and servers else None,
        "load_cpu_us_per_op": 1e6 * cpu["load"] / ops if ops and cpu.get("load") is not None else None,
        "verified": verified,
        "problems": list(problems or []),
        "raw": raw or {},
    }


# --------------------------------------------------------------------------------------------
# Figures, ratios, targets
# --------------------------------------------------------------------------------------------


def rate(cases: dict[str, dict[str, Any]], server: str, case: str) -> float | None:
    res = cases.get(server, {}).get(case)
    return res["rate"] if res and res["ok"] else None


def ratios(row: Row, cases: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """ours / Node memory and ours --fsync never / Node memory for this row (edge rows: the edge's
    figure over Node memory's figure for the same stream, read directly)."""
    node = rate(cases, "node-memory", row.compare_with or row.case)
    return {
        "ours": co.ratio(rate(cases, "ours", row.case), node),
        "ours-never": co.ratio(rate(cases, "ours-never", row.case), node),
    }


def judge(row: Row, cases: dict[str, dict[str, Any]], tail_baseline: float) -> tuple[str, str]:
    """(the issue's target for the row, whether this run meets it)."""
    r = ratios(row, cases)
    checks: list[tuple[str, float | None, float]] = []  # (what, value, at least)
    if row.case in ("binary-c64", "json-c64", "batch-c16"):
        target = "ours ≥ 0.5x Node memory; --fsync never ≥ 1x"
        checks = [("ours", r["ours"], 0.5), ("never", r["ours-never"], 1.0)]
    elif row.case == "binary-c1":
        ours = cases.get("ours", {}).get(row.case)
        p50 = ours["p50_ms"] if ours and ours["ok"] else None
        target = "ours p50 ≤ 0.35 ms"
        checks = [("p50", None if p50 is None else -p50, -0.35)]
    elif row.kind == "edge":
        target = "edge ≥ 2x Node memory"
        checks = [("edge", r["ours"], 2.0)]
    elif row.case == "tail":
        target = f"ours ≥ {(1 - SLOWER_ALLOWED) * tail_baseline:,.0f}/s (baseline {tail_baseline:,.0f}/s - 5%)"
        checks = [("ours", rate(cases, "ours", row.case), (1 - SLOWER_ALLOWED) * tail_baseline)]
    else:
        target = "ours ≥ 1x Node memory"
        checks = [("ours", r["ours"], 1.0)]
    known = [(what, v, want) for what, v, want in checks if v is not None]
    if not known:
        return target, "n/a"
    failed = [what for what, v, want in known if v < want]
    verdict = "yes" if not failed else "**no**" + (f" ({', '.join(failed)})" if len(checks) > 1 else "")
    if len(known) < len(checks):
        verdict += " (partial)"
    return target, verdict


def tail_baseline(baseline: dict[str, Any] | None) -> float:
    """Ours' tail reads/s in an earlier run's results.json, or the issue's figure."""
    for server in (baseline or {}).get("servers", []):
        if server["key"] == "ours":
            res = server["cases"].get("tail")
            if res and res["ok"] and res["rate"]:
                return float(res["rate"])
    return ISSUE_TAIL_READS_PER_S


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def fmt_figure(row: Row, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} MB/s" if row.unit == "MB/s" else f"{value:,.0f} {row.unit}"


def figure_cell(row: Row, res: dict[str, Any] | None) -> str:
    if res is None:
        return "n/a"
    if not res["ok"]:
        return "failed"
    latency = f"{co.fmt_ms(res['p50_ms'])} / {co.fmt_ms(res['p99_ms'])} ms"
    return f"{fmt_figure(row, res['rate'])} · {latency}"


def cpu_cell(row: Row, res: dict[str, Any] | None) -> str:
    if res is None or not res["cpu_s"]:
        return "-"
    parts = []
    for name, seconds in res["cpu_s"].items():
        pct = res["cpu_pct"].get(name)
        parts.append(f"{name} {seconds:.1f} s ({pct:.0f}%)" if seconds is not None and pct is not None else f"{name} -")
    per_op = res["server_cpu_us_per_op"]
    load_per_op = res["load_cpu_us_per_op"]
    if per_op is not None:
        scale, unit = (1000, "ms") if row.op == "MiB" else (1, "µs")
        load = f" (load {load_per_op / scale:,.2f})" if load_per_op is not None else ""
        parts.append(f"{per_op / scale:,.2f}{load} {unit}/{row.op}")
    if res["cpu_pct"].get("load", 0) >= GENERATOR_BUSY_PCT:
        parts.append(f"⚠ load generator ≥ {GENERATOR_BUSY_PCT}% of its core: it may be the limit")
    return ", ".join(parts)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cells) + " |" for cells in rows]
    return out


def main_table(
    keys: list[str], cases: dict[str, dict[str, Any]], selected: list[str], baseline: float
) -> tuple[list[str], list[tuple[str, str]]]:
    ratio_cols = [k for k in ("ours", "ours-never") if k in keys and "node-memory" in keys]
    head = ["Case", *(LABELS[k] for k in keys), *(f"{LABELS[k]} / Node memory" for k in ratio_cols)]
    head += ["Target", "Met?"]
    rows, verdicts = [], []
    for row in ROWS:
        if row.case not in selected:
            continue
        r = ratios(row, cases)
        target, met = judge(row, cases, baseline)
        verdicts.append((row.title, met))
        cells = [row.title, *(figure_cell(row, cases.get(k, {}).get(row.case)) for k in keys)]
        cells += [co.fmt_ratio(r[k]) for k in ratio_cols]
        rows.append([*cells, target, met])
    return _table(head, rows), verdicts


def per_row_table(keys: list[str], cases: dict[str, dict[str, Any]], selected: list[str], cell: Callable) -> list[str]:
    rows = []
    for row in ROWS:
        if row.case in selected:
            rows.append([row.title, *(cell(row, cases.get(k, {}).get(row.case)) for k in keys)])
    return _table(["Case", *(LABELS[k] for k in keys)], rows)


def demote(markdown: str) -> str:
    """Headings one level down, to nest another script's report in this one."""
    return re.sub(r"^(#+) ", r"#\1 ", markdown, flags=re.M)


def report(
    run: dict[str, Any],
    ctx: Any,
    args: argparse.Namespace,
    elapsed_s: float,
    baseline: dict[str, Any] | None,
    fanout: dict[str, Any] | None,
) -> str:
    m = run["machine"]
    keys = [s["key"] for s in run["servers"]]
    cases = {s["key"]: s["cases"] for s in run["servers"]}
    selected = [c for c in ctx.cases if c in ROW_BY_CASE]
    lines: list[str] = []
    add = lines.extend
    mode = "quick smoke run" if args.quick else "full run"
    add(["## Issue #16: durable appends and catch-up, ours vs Node (`@durable-streams/server` 0.3.7)", ""])
    add([f"*{mode}: {ctx.duration} s per case; {m['date']}; total {elapsed_s / 60:.1f} min.*", ""])
    add(
        [
            f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['mem_gib']} GiB RAM, Linux {m['kernel']}; "
            f"Python {m['python']}, Node {m['node']}, {m['wrk']}. Data dirs on {m['data_fs']}. Load average at "
            f"start {m['loadavg_start'][0]:.2f}, at end {os.getloadavg()[0]:.2f}. Pinning: {ctx.pinning.note}.",
            "",
            "Servers one at a time. Ours: `plugin-streams origin`, file engine, "
            f"chunk size {ctx.chunk_size or 'default'}; `--fsync always` acknowledges after fdatasync, `--fsync "
            "never` once in the page cache. Node memory writes nothing to disk; Node dataDir fsyncs each append. "
            "Appends: wrk (closed loop, one thread per connection), each case a fresh stream, read back after. "
            "Catch-up: bench/walk_reader.c, each connection walks from `offset=-1` along `Stream-Next-Offset` to "
            "`Stream-Up-To-Date` and starts again; MB/s = body bytes of complete, verified walks ÷ time "
            f"(1 MB = 10^6 B); latency per GET. Streams: {cw.STREAM_MESSAGES:,} messages of {cw.MESSAGE_BYTES} B "
            "(≥ 1 MiB).",
            "",
        ]
    )
    if selected:
        add(main_sections(run, keys, cases, selected, baseline, args))
    if fanout is not None:
        add(["### Must not get slower: fan-out through one edge (compare_edge.py's cases)", ""])
        if baseline is not None:
            add([*baseline_table(fanout_figures(fanout["results"]), fanout_figures(baseline.get("fanout"))), ""])
        add([demote(demote(fanout["markdown"])), ""])
    return "\n".join(lines)


def main_sections(
    run: dict[str, Any],
    keys: list[str],
    cases: dict[str, dict[str, Any]],
    selected: list[str],
    baseline: dict[str, Any] | None,
    args: argparse.Namespace,
) -> list[str]:
    """The issue's table with ratios and targets, the CPU per case, what was verified, problems."""
    lines: list[str] = []
    add = lines.extend
    table, verdicts = main_table(keys, cases, selected, tail_baseline(baseline))
    add([*table, ""])
    judged = [(t, v) for t, v in verdicts if v != "n/a"]
    if judged:
        missed = [t for t, v in judged if not v.startswith("yes")]
        add(
            [
                f"Targets met: {len(judged) - len(missed)} of {len(judged)}"
                + (f"; not met: {'; '.join(missed)}." if missed else ".")
                + (" (Smoke run: indicative only.)" if args.quick else ""),
                "",
            ]
        )
    add(["### CPU per case", ""])
    add(
        [
            "CPU seconds of each process over the measured run (% of one core), then CPU per operation of the "
            "server processes together (in brackets: of the load generator). A load generator near 100% would "
            "be the limit.",
            "",
            *per_row_table(keys, cases, selected, cpu_cell),
            "",
        ]
    )
    add(["### What was verified", ""])
    add([*per_row_table(keys, cases, selected, lambda _row, res: res["verified"] if res else "n/a"), ""])
    problems = [f"{LABELS[s['key']]}: {p}" for s in run["servers"] for p in s["problems"]]
    for s in run["servers"]:
        for case, res in s["cases"].items():
            problems += [f"{LABELS[s['key']]}, {case}: {p}" for p in res["problems"]]
    add(["**Problems observed**" if problems else "**Problems observed:** none.", ""])
    if problems:
        add([*(f"- {p}" for p in problems), ""])
    return lines


#: (figure, compare_edge case, system, how to read it from the case, higher is better)
FANOUT_FIGURES: list[tuple[str, str, str, Callable[[dict[str, Any]], float | None], bool]] = [
    ("long-poll delivery p50 (ms), through the edge", "longpoll", "ours", lambda c: c.get("p50_ms"), False),
    ("long-poll delivery p99 (ms), through the edge", "longpoll", "ours", lambda c: c.get("p99_ms"), False),
    ("origin requests per append (long-poll)", "longpoll", "ours", lambda c: c.get("upstream_per_append"), False),
    ("SSE delivery p99 (ms)", "sse", "ours", lambda c: c.get("p99_ms"), False),
    ("edge memory per SSE client (B)", "sse", "ours", lambda c: c.get("bytes_per_client"), False),
]


def fanout_figures(results: dict[str, Any] | None) -> dict[str, tuple[float, bool]]:
    """The fan-out figures the issue says must not get slower, from compare_edge's results."""
    out: dict[str, tuple[float, bool]] = {}
    for title, case, system, read, higher in FANOUT_FIGURES:
        for run in (results or {}).get("runs", []):
            res = run["cases"].get(case)
            if run["key"] == system and res and res.get("ok") and read(res) is not None:
                out[title] = (float(read(res)), higher)
    return out


def baseline_table(now: dict[str, tuple[float, bool]], before: dict[str, tuple[float, bool]]) -> list[str]:
    """This run against --baseline's: within 5% or better."""
    rows = []
    for title, (value, higher) in now.items():
        if title not in before:
            continue
        old = before[title][0]
        change = co.ratio(value, old)
        ok = change is not None and (change >= 1 - SLOWER_ALLOWED if higher else change <= 1 + SLOWER_ALLOWED)
        rows.append([title, f"{value:,.2f}", f"{old:,.2f}", co.fmt_ratio(change), "yes" if ok else "**no**"])
    return _table(["Figure", "this run", "baseline", "this / baseline", "within 5% or better?"], rows)
