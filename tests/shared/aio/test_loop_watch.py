"""The event-loop watch (shared.aio.loop_watch): product code that blocks the loop fails loudly.

The in-process watch is the autouse fixture of tests/conftest.py; real servers get it from
the environment tests/support/processes.py sets, and their wrappers fail a test on its mark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from blockbuster import BlockingError

import plugin_streams.shared.aio as product_package
from plugin_streams.shared.aio.loop_watch import BLOCKING_MARK
from tests.support.processes import OriginProcess


def product_function(body: str) -> Callable[[], None]:
    """A function whose frames say it lives in the product (how blockbuster tells product code)."""
    filename = str(Path(product_package.__path__[0]) / "_blocking_example.py")
    namespace: dict[str, object] = {"time": time}
    exec(compile(f"def blocking() -> None:\n    {body}\n", filename, "exec"), namespace)
    return namespace["blocking"]  # type: ignore[return-value]


async def test_a_blocking_call_in_product_code_on_the_loop_raises_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(BlockingError, match=r"time\.sleep"):
        product_function("time.sleep(0)")()
    assert BLOCKING_MARK in caplog.text


async def test_the_same_call_off_the_loop_and_in_test_code_is_allowed() -> None:
    await asyncio.to_thread(product_function("time.sleep(0)"))
    time.sleep(0)  # noqa: ASYNC251  (the tests' own code may block: only the product is watched)


def test_a_server_that_blocked_its_loop_fails_the_test_when_it_stops(tmp_path: Path) -> None:
    origin = OriginProcess(tmp_path / "data").start()
    assert "blocking calls on the event loop fail" in origin.log_path.read_text()
    with origin.log_path.open("a") as log:  # as the server would have logged it
        log.write(f"ERROR plugin_streams.shared.aio.loop_watch {BLOCKING_MARK}: time.sleep\n")
    with pytest.raises(AssertionError, match="blocked its event loop"):
        origin.stop()
