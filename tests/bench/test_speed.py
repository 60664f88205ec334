"""bench/speed.py (issue #16's table): its checks fail on a wrong stream, its ratios and verdicts come
from the measured figures, and a tiny real run of the whole script reports every row.

The figures are only worth something if the verification fails when it should: the read-back
check, the Python walk's content check and the C walker's per-walk check are each fed a wrong
stream here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import process_group

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import catchup_walk as cw  # noqa: E402  (bench/catchup_walk.py)
import compare_origin as co  # noqa: E402  (bench/compare_origin.py)
import speed_report as sr  # noqa: E402  (bench/speed_report.py)

needs_tools = pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("gcc") is None, reason="needs wrk, gcc")


def stream_of(count: int, content_type: str) -> cw.Stream:
    return cw.Stream("/v1/stream/x", content_type, [cw.message(i, content_type) for i in range(count)])


def test_every_message_is_100_bytes_and_unique() -> None:
    for ctype in (co.BINARY_CT, co.JSON_CT):
        messages = stream_of(cw.STREAM_MESSAGES, ctype).messages
        assert {len(m) for m in messages} == {cw.MESSAGE_BYTES}
        assert len(set(messages)) == len(messages)
    assert cw.STREAM_MESSAGES * cw.MESSAGE_BYTES >= 1 << 20


def test_a_binary_walk_must_hold_every_message_once_in_any_order() -> None:
    stream = stream_of(50, co.BINARY_CT)
    data = b"".join(reversed(stream.messages))
    assert cw.walk_problem([data[:1000], data[1000:]], stream) is None
    short = cw.walk_problem([data[:-100]], stream)
    assert short is not None and "4,900 bytes" in short
    doubled = data[:-100] + data[:100]  # one message twice, another missing: the size is right
    assert cw.walk_problem([doubled], stream) == "the walk's messages differ from those written"


def test_a_json_walk_must_hold_every_message_in_order() -> None:
    stream = stream_of(30, co.JSON_CT)
    bodies = [b"[" + b",".join(stream.messages[:10]) + b"]", b"[" + b",".join(stream.messages[10:]) + b"]", b""]
    assert cw.walk_problem(bodies, stream) is None
    short = cw.walk_problem(bodies[:1], stream)
    assert short == "the walk returned 10 JSON messages, 30 were written"
    swapped = [b"[" + b",".join(stream.messages[10:]) + b"]", bodies[0]]
    assert cw.walk_problem(swapped, stream) is not None


def test_a_read_back_short_of_the_acknowledged_appends_is_a_problem() -> None:
    assert co.read_back_problem(100, 100, 64) is None
    assert co.read_back_problem(164, 100, 64) is None  # requests in flight when wrk stopped
    assert co.read_back_problem(99, 100, 64) == "stream holds 99 records but 100 appends were acknowledged"
    assert co.read_back_problem(165, 100, 64) is not None
    assert co.read_back_problem(1000, 10, 16, batch=100) is None
    assert "appends of 100 messages" in (co.read_back_problem(999, 10, 16, batch=100) or "")


def measured(rate: float, p50: float = 1.0) -> dict[str, Any]:
    return sr.case_dict(ok=True, rate=rate, p50_ms=p50, p99_ms=2 * p50)


def test_ratios_and_verdicts_follow_the_measured_figures() -> None:
    row = sr.ROW_BY_CASE["binary-c64"]
    cases = {"ours": {row.case: measured(30.0)}, "ours-never": {row.case: measured(50.0)}}
    cases["node-memory"] = {row.case: measured(40.0)}
    assert sr.ratios(row, cases) == {"ours": 30.0 / 40.0, "ours-never": 50.0 / 40.0}
    assert sr.judge(row, cases, 1.0)[1] == "yes"
    cases["ours"][row.case] = measured(19.0)
    assert sr.ratios(row, cases)["ours"] == 19.0 / 40.0
    assert sr.judge(row, cases, 1.0)[1] == "**no** (ours)"
    cases["ours"][row.case]["ok"] = False  # a failed case has no figure: no ratio, no verdict on it
    assert sr.ratios(row, cases)["ours"] is None
    assert sr.judge(row, cases, 1.0)[1] == "yes (partial)"


def test_the_edge_row_is_compared_with_node_reading_the_same_stream_directly() -> None:
    cases = {"ours": {"edge-json": measured(900.0)}, "node-memory": {"catchup-json": measured(400.0)}}
    assert sr.ratios(sr.ROW_BY_CASE["edge-json"], cases)["ours"] == 900.0 / 400.0
    assert sr.judge(sr.ROW_BY_CASE["edge-json"], cases, 1.0)[1] == "yes"
    cases["node-memory"]["catchup-json"] = measured(451.0)
    assert sr.judge(sr.ROW_BY_CASE["edge-json"], cases, 1.0)[1] == "**no**"


def test_the_c1_target_is_ours_p50_and_the_tail_target_its_baseline() -> None:
    c1, tail = sr.ROW_BY_CASE["binary-c1"], sr.ROW_BY_CASE["tail"]
    assert sr.judge(c1, {"ours": {c1.case: measured(3000.0, p50=0.34)}}, 1.0)[1] == "yes"
    assert sr.judge(c1, {"ours": {c1.case: measured(3000.0, p50=0.36)}}, 1.0)[1] == "**no**"
    earlier = {"servers": [{"key": "ours", "cases": {"tail": measured(20_000.0)}}]}
    assert sr.tail_baseline(earlier) == 20_000.0
    assert sr.tail_baseline(None) == sr.ISSUE_TAIL_READS_PER_S
    assert sr.judge(tail, {"ours": {"tail": measured(19_000.0)}}, 20_000.0)[1] == "yes"  # within 5%
    assert sr.judge(tail, {"ours": {"tail": measured(18_900.0)}}, 20_000.0)[1] == "**no**"


def test_cpu_per_operation_is_the_measured_cpu_over_the_operations() -> None:
    res = sr.case_dict(ok=True, rate=1.0, cpu_s={"origin": 2.0, "edge": 1.0, "load": 0.5}, wall_s=4.0, ops=1000)
    assert res["cpu_pct"] == {"origin": 50.0, "edge": 25.0, "load": 12.5}
    assert res["server_cpu_us_per_op"] == pytest.approx(3000.0)
    assert res["load_cpu_us_per_op"] == pytest.approx(500.0)


@needs_tools
def test_the_walker_counts_only_walks_of_the_stream_s_exact_size(tmp_path: Path) -> None:
    with process_group(tmp_path, 0.5) as group:
        url = group.origin("--chunk-size", "4096").url.rstrip("/")
        stream = cw.fill(url, "/v1/stream/walked", co.BINARY_CT, count=300)
        cw.verify(url, stream)
        assert stream.walk_bytes == 30_000 and stream.gets_per_walk > 1
        pinning = co.Pinning(False)
        good = cw.run_walker(url, stream, 2, 0.5, pinning, {}, tmp_path / "good.txt")
        assert good["walks_good"] > 0 and good["walks_bad"] == 0 and cw.walker_problems(good) == []
        assert good["bytes_good"] == good["walks_good"] * 30_000
        short = cw.run_walker(url, stream, 2, 0.5, pinning, {}, tmp_path / "short.txt", expected=29_900)
        assert short["walks_good"] == 0 and short["bad_size"] == short["walks_bad"] > 0
        assert "no complete, verified walk" in cw.walker_problems(short)
        tail = cw.run_walker(url, stream, 2, 0.5, pinning, {}, tmp_path / "tail.txt", from_tail=True)
        assert tail["walks_good"] == tail["gets"] > 0 and tail["bytes_all"] == 0
        missing = cw.Stream("/v1/stream/absent", co.BINARY_CT, [], tail=stream.tail, walk_bytes=0)
        absent = cw.run_walker(url, missing, 1, 0.3, pinning, {}, tmp_path / "absent.txt")
        assert absent["walks_good"] == 0 and absent["first_bad_status"] == 404


@needs_tools
def test_a_tiny_run_reports_every_row_with_ratios_of_its_own_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, str(BENCH_DIR / "speed.py"), "--servers", "ours,ours-never,node-memory"]
    cmd += ["--cases", "appends,catchup,tail", "--duration", "1", "--warmup", "0", "--no-pin"]
    cmd += ["--out", str(out), "--data-root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    assert "**Problems observed:** none." in report, report
    assert report.strip() == (out / "report.md").read_text().strip()
    run = json.loads((out / "results.json").read_text())
    cases = {server["key"]: server["cases"] for server in run["servers"]}
    for row in sr.ROWS:
        line = next((ln for ln in report.splitlines() if ln.startswith(f"| {row.title} |")), None)
        assert line is not None, row.title
        cells = [c.strip() for c in line.strip("|").split("|")]
        node_case = row.compare_with or row.case  # the edge rows: Node reading the same stream directly
        measured = [("ours", row.case), ("node-memory", node_case)]
        if row.kind != "edge":
            measured.append(("ours-never", row.case))
        for key, case in measured:
            res = cases[key][case]
            assert res["ok"] and res["problems"] == [] and res["rate"] > 0, (key, case, res["problems"])
            assert res["server_cpu_us_per_op"] > 0 and res["cpu_pct"]["load"] > 0
        ours_ratio = cases["ours"][row.case]["rate"] / cases["node-memory"][node_case]["rate"]
        assert cells[4] == co.fmt_ratio(ours_ratio), (row.title, cells)
        if row.kind == "edge":
            assert set(cases["ours"][row.case]["cpu_s"]) == {"edge", "origin", "load"}
        assert re.fullmatch(r"yes.*|\*\*no\*\*.*", cells[-1]), cells
    for key in ("ours", "ours-never", "node-memory"):
        batch = cases[key]["batch-c16"]["raw"]
        acknowledged = batch["s200"] + batch["s204"] + batch["s2xx_other"]
        assert 0 < acknowledged * 100 <= batch["records_stored"] <= (acknowledged + 16) * 100
        walk = cases[key]["catchup-binary"]["raw"]
        assert walk["walks_bad"] == 0 and walk["bytes_good"] == walk["walks_good"] * walk["expected_bytes"]
        assert walk["expected_bytes"] == cw.STREAM_MESSAGES * cw.MESSAGE_BYTES
    assert (
        cases["node-memory"]["catchup-binary"]["raw"]["gets_in_good_walks"]
        == (cases["node-memory"]["catchup-binary"]["raw"]["walks_good"])
    )  # Node answers a whole walk at once
