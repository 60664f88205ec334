"""The conformance suite against a regional replica's URL, the origin in another (simulated) region.

Every stream is replicated (`--replicate '**'`), so reads are answered by the replica, writes
go across the delayed link to the origin, and the replica must show each client its own writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.run_suite import ensure_installed, run_suite
from tests.conformance.test_conformance import EXPECTED_TESTS
from tests.support.delay_proxy import ThreadedDelayProxy
from tests.support.processes import EdgeProcess, OriginProcess

pytestmark = [pytest.mark.conformance, pytest.mark.timeout(900)]
ONE_WAY_DELAY = 0.002  # seconds: the suite has 5 s tests of ~250 sequential writes, each a round trip


def test_conformance_against_a_regional_replica(tmp_path: Path) -> None:
    ensure_installed()
    origin = OriginProcess(tmp_path / "origin", long_poll_timeout=0.5).start()
    port = int(origin.url.rsplit(":", 1)[1])
    with ThreadedDelayProxy("127.0.0.1", port, ONE_WAY_DELAY) as link:
        replica = EdgeProcess(
            link.url,
            tmp_path,
            "--region",
            "eu",
            "--replicate",
            "**",
            "--replica-dir",
            str(tmp_path / "replica"),
            long_poll_timeout=0.5,
        ).start()
        try:
            result = run_suite(replica.url, long_poll_ms=500)
            print(f"\nconformance (regional replica, {ONE_WAY_DELAY * 1000:.0f} ms one way): {result.summary()}")
            assert result.failed == 0, "failures:\n" + "\n".join(
                f"  {failure.name}: {failure.message}" for failure in result.failures
            )
            assert result.passed == EXPECTED_TESTS, result.summary()
        finally:
            assert replica.stop() == 0
            assert origin.stop() == 0
