"""bench/kv.py: the watch checker (every event's checks, one by one) and a tiny real run of the whole script.

The benchmark's figures are only worth something if its verification fails when it should, so
the watcher's checks are tested against hand-made event sequences with each fault in them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import kv_watch  # noqa: E402  (bench/kv_watch.py)

SENT_NS = 1_700_000_000_000_000_000


def event(i: int, *, offset: int | None = None, at_ms: int | None = None) -> dict[str, Any]:
    """The change event of the writer's commit number i (offsets and versionstamps rise with i)."""
    position = i + 10 if offset is None else offset
    return {
        "versionstamp": f"{position:020x}",
        "offset": f"{0:016d}_{position:016d}",
        "at": SENT_NS // 1_000_000 + 1 if at_ms is None else at_ms,
        "changes": [{"key": kv_watch.WATCH_KEY, "op": "set", "value": {"i": i, "t": SENT_NS}, "expireAt": None}],
        "enqueued": [],
        "queue": [],
    }


def answers(n: int) -> dict[int, tuple[str, str]]:
    return {i: (event(i)["offset"], event(i)["versionstamp"]) for i in range(n)}


def watched(events: list[dict[str, Any]], n: int = 5) -> kv_watch.OrderWatcher:
    watcher = kv_watch.OrderWatcher()
    for e in events:
        watcher.take(e, SENT_NS + 3_000_000, answers(n))
    return watcher


def faults(w: kv_watch.OrderWatcher) -> tuple[int, int, int, int]:
    return w.duplicates, w.out_of_order, w.not_rising, w.wrong_position


def test_commits_in_order_pass_every_check_and_give_their_latency() -> None:
    w = watched([event(i) for i in range(5)])
    assert (w.received, w.expected) == (5, 5)
    assert faults(w) == (0, 0, 0, 0)
    assert w.latency_ns == [3_000_000] * 5  # receive time - the writer's send time
    assert w.latency_at_ns == [2_000_000] * 5  # receive time - the origin's commit time (ms)


def test_a_commit_delivered_twice_is_a_duplicate_and_not_received_again() -> None:
    w = watched([event(0), event(1), event(1), event(2)])
    assert w.received == 3
    assert w.duplicates == 1
    assert w.not_rising == 1  # the repeated event's offset did not rise either


def test_a_skipped_commit_is_out_of_order() -> None:
    w = watched([event(0), event(2), event(3)])
    assert (w.received, w.out_of_order, w.duplicates) == (3, 1, 0)


def test_commits_in_the_wrong_order_are_caught() -> None:
    w = watched([event(1), event(0)])
    assert w.out_of_order == 1  # 1 came before 0
    assert w.duplicates == 1  # and 0 then looks old
    assert w.not_rising == 1


def test_an_event_at_another_offset_than_its_commit_answer_is_caught() -> None:
    w = watched([event(0), event(1, offset=99)])
    assert w.wrong_position == 1


def test_changes_to_other_keys_are_not_counted() -> None:
    other = event(0)
    other["changes"][0]["key"] = ["bench", "other"]
    w = watched([other])
    assert (w.received, w.expected) == (0, 0)


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("gcc") is None, reason="needs wrk and gcc")
def test_a_tiny_run_of_the_whole_benchmark_verifies_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, str(BENCH_DIR / "kv.py"), "--systems", "kv", "--concurrency", "1,4"]
    cmd += ["--duration", "1", "--warmup", "0", "--watchers", "12", "--order-watchers", "4"]
    cmd += ["--watch-seconds", "1", "--no-pin", "--out", str(out), "--data-root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=100, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| KV atomic commits/s, c=4" in done.stdout
    assert "Problems observed" not in done.stdout, done.stdout
    results = json.loads((out / "results.json").read_text())["results"]
    for conns in ("1", "4"):
        case = results["commits"]["kv"]["cases"][conns]
        raw = case["raw"]
        assert raw["verified"] > 0 and raw["verified"] == raw["s200"] == raw["requests"]
        assert raw["verified"] <= raw["counter"] <= raw["verified"] + int(conns)
    watch = results["watch"]
    assert watch["stored"] == 20  # 20 commits/s for 1 s
    assert watch["native"]["missed"] == 0 and watch["native"]["deliveries"] == 8 * 20
    assert watch["python"]["received"] == watch["python"]["expected"] == 4 * 20
    assert watch["python"]["out_of_order"] == watch["python"]["duplicates"] == 0
