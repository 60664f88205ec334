"""The upstream conformance suite (0.3.6) against real processes: origin (fresh and restarted), edge,
two postgres origins on one database behind a round-robin proxy.

This is the judge of protocol behaviour. Against the origin the whole suite runs, including the 6
reserved subscription API tests (338), on a fresh data directory and again after SIGTERM and a
restart on the same one: recovered streams must not disturb anything, and subscriptions left
behind by the first run (the pull-wake test never deletes its own) keep working from disk.
Through an edge the whole suite runs too: the edge passes `__ds` to the origin, and the origin,
told its public URL is the edge's (`--public-url`, as a deployment behind edges sets it), names the
edge in the `jwks_url` and `callback_url` it hands out.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conformance.run_suite import ensure_installed, run_suite
from tests.support.ports import closed_port
from tests.support.processes import EdgeProcess, OriginProcess

EXPECTED_TESTS = 332
EXPECTED_WITH_SUBSCRIPTIONS = 338

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(900)]


def _run_and_check(url: str, label: str, *, subscriptions: bool = False) -> None:
    result = run_suite(url, long_poll_ms=500, subscriptions=subscriptions)
    print(f"\nconformance ({label}): {result.summary()}")
    assert result.failed == 0, f"{label}: failures:\n" + "\n".join(
        f"  {failure.name}: {failure.message}" for failure in result.failures
    )
    expected = EXPECTED_WITH_SUBSCRIPTIONS if subscriptions else EXPECTED_TESTS
    assert result.passed == expected, f"{label}: {result.summary()}"


def test_conformance_fresh_then_after_restart(tmp_path: Path) -> None:
    ensure_installed()
    data_dir = tmp_path / "data"
    first = OriginProcess(data_dir, long_poll_timeout=0.5, chunk_size=None).start()
    try:
        _run_and_check(first.url, "fresh data directory", subscriptions=True)
    finally:
        assert first.stop() == 0
    second = OriginProcess(data_dir, long_poll_timeout=0.5, chunk_size=None).start()
    try:
        _run_and_check(second.url, "after restart on the same data directory", subscriptions=True)
    finally:
        assert second.stop() == 0


def test_conformance_through_an_edge(tmp_path: Path) -> None:
    """The edge is transparent: the whole suite passes against its URL, with an origin behind it."""
    ensure_installed()
    edge_port = closed_port()
    public = f"http://127.0.0.1:{edge_port}"
    origin = OriginProcess(tmp_path / "data", "--public-url", public, long_poll_timeout=0.5).start()
    edge = EdgeProcess(origin.url, tmp_path, "--port", str(edge_port), long_poll_timeout=0.5).start()
    try:
        assert edge.url == public
        _run_and_check(edge.url, "through an edge", subscriptions=True)
    finally:
        assert edge.stop() == 0
        assert origin.stop() == 0


@contextmanager
def round_robin_proxy(log: Path, *upstreams: str) -> Iterator[str]:
    """tests/support/round_robin.py as a child process: consecutive requests go to the upstreams in turn.

    Its stderr (clients that hang up mid-answer, which the suite does on purpose) goes to `log`."""
    args = [sys.executable, "-m", "tests.support.round_robin"]
    for upstream in upstreams:
        args += ["--upstream", upstream]
    root = Path(__file__).resolve().parents[2]
    with log.open("ab") as errors:
        proxy = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline().decode()  # the proxy prints PROXY_PORT= once it listens (or exits: "")
        assert line.startswith("PROXY_PORT="), f"round-robin proxy did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split('=', 1)[1])}"
    finally:
        proxy.terminate()
        proxy.wait(10)
        if proxy.stdout is not None:
            proxy.stdout.close()


def test_conformance_two_postgres_origins_in_turn(tmp_path: Path, postgres_dsn: str) -> None:
    """Two origins on one database, consecutive requests alternating between them: the suite cannot
    tell them from one server (a create on one, the append on the other, the read on the first)."""
    ensure_installed()
    engine = ("--engine", "postgres", "--database-url", postgres_dsn)
    first = OriginProcess(tmp_path / "a", *engine, long_poll_timeout=0.5).start()
    second = OriginProcess(tmp_path / "b", *engine, long_poll_timeout=0.5).start()
    try:
        with round_robin_proxy(tmp_path / "round_robin.log", first.url, second.url) as proxy:
            _run_and_check(proxy, "two postgres origins through a round-robin proxy")
    finally:
        assert second.stop() == 0
        assert first.stop() == 0
