"""deploy/prometheus: the rules load, every alert has promtool test cases, and they pass.

`promtool` comes with Debian's `prometheus` package (scripts/install --test installs it without
starting its service); the tests that run it are skipped where it is missing. The coverage check
(every `alert:` of rules.yml named by an `alertname:` of rules.test.yml) needs nothing installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULES_TESTS = PROMETHEUS / "rules.test.yml"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed: `apt-get install -y --no-install-recommends prometheus` "
    "(scripts/install --test does it)",
)


def alerts() -> set[str]:
    return set(re.findall(r"^\s*- alert:\s*(\S+)\s*$", RULES.read_text(), re.M))


def alerts_with_cases() -> set[str]:
    return set(re.findall(r"^\s*alertname:\s*(\S+)\s*$", RULES_TESTS.read_text(), re.M))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )


def test_every_alert_has_test_cases() -> None:
    assert len(alerts()) >= 20  # the pattern still finds them
    assert alerts() - alerts_with_cases() == set(), "alerts of rules.yml with no case in rules.test.yml"
    assert alerts_with_cases() - alerts() == set(), "cases in rules.test.yml for alerts rules.yml no longer has"


def test_every_alert_is_tested_firing_at_least_once() -> None:
    """A file of `exp_alerts: []` only would prove nothing: each alert must be seen firing."""
    text = RULES_TESTS.read_text()
    firing = set(re.findall(r"alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*\n\s*- exp_labels", text))
    assert alerts() - firing == set()


@needs_promtool
def test_the_rules_and_the_scrape_configuration_are_valid() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_the_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", RULES_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
