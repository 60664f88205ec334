"""Print how many requests the fuzzer tried, per target, at the end of the run."""

from __future__ import annotations

import pytest

from tests.fuzz.findings import TRIED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(TRIED, [])
    if lines:
        terminalreporter.section("fuzz: requests tried")
        for line in lines:
            terminalreporter.write_line(line)
