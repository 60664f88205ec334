"""bench/compare_engines.py: the CPU sum over a server's processes, and a tiny real run of the whole script.

The tiny run starts every engine (file, one PostgreSQL node, a primary with a synchronous
standby) and checks that each case ran, verified its responses and produced every figure of the
report, with the CPU of the origin and of PostgreSQL measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import missing_postgres, require

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import compare_engines  # noqa: E402  (bench/compare_engines.py)

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"


def test_cpu_of_a_child_still_counts_once_it_has_exited_and_been_reaped() -> None:
    before = compare_engines.tree_cpu_seconds(os.getpid())
    subprocess.run([sys.executable, "-c", BURN], check=True, timeout=30)  # waits: the child is reaped
    after = compare_engines.tree_cpu_seconds(os.getpid())
    assert after - before >= 0.3


def test_cpu_of_a_live_child_is_counted() -> None:
    child = subprocess.Popen([sys.executable, "-c", BURN + "\nimport sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        waited = 0.0
        while compare_engines.tree_cpu_seconds(child.pid) < 0.3 and waited < 20:
            subprocess.run(["sleep", "0.1"], check=True)
            waited += 0.1
        alone = compare_engines.tree_cpu_seconds(child.pid)
        assert alone >= 0.3
        assert compare_engines.tree_cpu_seconds(os.getpid()) >= alone  # the parent's sum holds the live child
    finally:
        child.communicate(b"", timeout=30)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_a_tiny_run_of_every_engine_verifies_and_reports_every_figure(tmp_path: Path) -> None:
    require(missing_postgres())
    out = tmp_path / "out"
    cmd = [sys.executable, str(BENCH_DIR / "compare_engines.py"), "--runs", "1", "--duration", "1", "--warmup", "0"]
    cmd += ["--lp-readers", "4", "--lp-appends", "5", "--no-pin", "--out", str(out), "--data-root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Problems observed" not in done.stdout, done.stdout
    for title, *_ in [*compare_engines.FIGURES, *compare_engines.CPU_FIGURES]:
        assert f"| {title} |" in done.stdout
    assert "postgres + sync standby / file" in done.stdout
    results = json.loads((out / "results.json").read_text())
    for settings in results["pg_settings"].values():
        assert settings["fsync"] == "on" and settings["synchronous_commit"] == "on"
    runs = {run["engine"]: run for run in results["runs"]}
    assert sorted(runs) == sorted(compare_engines.ENGINES)
    for engine, run in runs.items():
        assert run["problems"] == [], (engine, run["problems"])
        cases = run["cases"]
        assert sorted(cases) == sorted(["appends c=1", "appends c=64", "catch-up", "long-poll"])
        for name, case in cases.items():
            assert case["ok"] and case["problems"] == [], (engine, name, case["problems"])
            assert case["window"]["origin_cpu_s"] > 0, (engine, name)
            assert (case["window"]["pg_cpu_s"] is None) == (engine == "file"), (engine, name)
        for conns in (1, 64):
            raw = cases[f"appends c={conns}"]["raw"]
            acknowledged = raw["s200"] + raw["s204"] + raw["s2xx_other"]
            assert 0 < acknowledged <= raw["records_stored"] <= acknowledged + conns
        catchup = cases["catch-up"]
        assert catchup["raw"]["gets_per_read"] >= 1 and catchup["raw"]["good"] > 0 and catchup["rate"] > 0
        longpoll = cases["long-poll"]["raw"]
        assert longpoll["appends_stored"] == 5 and longpoll["missed"] == 0
        assert longpoll["deliveries"] == 4 * 5
    standby_pg = runs["pg-sync"]["cases"]["appends c=1"]["window"]["pg_cpu_s"]
    assert standby_pg > 0
