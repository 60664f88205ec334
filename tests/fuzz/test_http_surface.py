"""Property-based fuzzing of the whole HTTP surface, through an origin and through edges.

For random requests (tests/fuzz/strategies.py) against real processes, each open and with an
access policy, these must hold:

- no 5xx, except the documented 503 of the live-connection limit;
- an answer's head within HEAD_TIMEOUT and a (non-live) body within BODY_TIMEOUT;
- no traceback text in any body;
- every process's /healthz answering within 100 ms throughout (tests/fuzz/probe.py);
- nothing in the processes' stderr that says a handler crashed.

The budget is FUZZ_SECONDS (default 60) split over the targets; `FUZZ_SECONDS=1800` is the long
run. Examples come from Hypothesis in batches, batch i with seed FUZZ_SEED + i: FUZZ_SEED is 0
under CI=true (a CI failure replays locally with `CI=true` or `FUZZ_SEED=0`) and random
otherwise; a failure report names its seed and the exact bytes of each failing request.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings

from tests.fuzz import deployment as dep
from tests.fuzz.findings import TRIED, Findings, log_problems
from tests.fuzz.strategies import Request, requests
from tests.fuzz.wire import Hang, Malformed, exchange

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "60"))
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "0" if CI else str(random.SystemRandom().randrange(2**32))))
TARGETS = ("origin-open", "edge-open", "origin-auth", "edge-auth", "bare-edge-auth-origin", "origin-postgres")
BUDGET = FUZZ_SECONDS / len(TARGETS)
# Generous on a loaded 2-core machine: the longest legitimate wait is a long-poll (0.3 s here).
HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 10.0
BATCH = 50
SETTINGS = settings(
    max_examples=BATCH,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)

pytestmark = pytest.mark.timeout(int(BUDGET + 300))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[dep.Deployment]:
    d = dep.start(tmp_path_factory.mktemp("fuzz"))
    try:
        d.probe = dep.Probe([t.process.url for t in d.targets.values()])
        yield d
    finally:
        if d.probe is not None:
            worst = d.probe.stop()
            names = {t.process.url: t.name for t in d.targets.values()}
            line = ", ".join(f"{names.get(url, url)} {seconds * 1000:.0f} ms" for url, seconds in worst.items())
            request.config.stash.setdefault(TRIED, []).append(f"worst /healthz latency: {line}")
        d.stop()


class Run:
    """One target's fuzzing: sends requests until the deadline, keeps what failed."""

    def __init__(self, target: dep.Target, deadline: float) -> None:
        self.target = target
        self.deadline = deadline
        self.findings = Findings(target.name)
        self.tried = 0
        self.statuses: Counter[int] = Counter()

    def one(self, request: Request) -> None:
        if time.monotonic() > self.deadline:
            return
        surface = self.target.surface
        started = time.time()
        marks = [(p.log_path, _size(p.log_path)) for p in self.target.logs]
        try:
            response = exchange(
                surface.host,
                surface.port,
                request.to_bytes(),
                head_request=request.method == "HEAD",
                head_timeout=HEAD_TIMEOUT,
                body_timeout=BODY_TIMEOUT,
            )
            self.findings.check(request, response, lambda: "".join(_read_from(path, at) for path, at in marks))
            self.statuses[response.status] += 1
        except Hang as e:
            self.findings.add("hang", 0, request, str(e))
        except Malformed as e:
            self.findings.add("malformed answer", 0, request, str(e))
        except ConnectionRefusedError as e:
            self.findings.add("no server", 0, request, repr(e))
        except OSError as e:  # a reset before any answer: reported, so that a pattern shows
            self.findings.add("connection error", 0, request, repr(e))
        finally:
            self.findings.recent.append((started, time.time(), request))
            self.tried += 1

    def batch(self, number: int) -> None:
        test = SETTINGS(given(requests(self.target.surface))(self.one))
        seed(FUZZ_SEED + number)(test)()


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_http_surface(deployment: dep.Deployment, name: str, request: pytest.FixtureRequest) -> None:
    target = deployment.targets[name]
    log_marks = {p.log_path: _size(p.log_path) for p in target.logs}
    probe = deployment.probe
    assert probe is not None
    probe.take()  # slow polls from before this target's turn are not its doing
    run = Run(target, time.monotonic() + BUDGET)
    number = 0
    while time.monotonic() < run.deadline:
        token = dep.ADMIN if target.surface.tokens else None
        target.surface.streams.update(dep.seed(target.logs[-1].url, token))  # the fuzzer may have deleted them
        run.batch(number)
        number += 1
        for poll in probe.take():
            run.findings.slow_health(poll)
        if any(p.proc is not None and p.proc.poll() is not None for p in target.logs):
            break
    time.sleep(0.3)  # a poll waiting behind the last request reports after it
    for poll in probe.take():
        run.findings.slow_health(poll)
    problems = [f.report() for f in run.findings.groups.values()]
    for process in target.logs:
        if process.proc is not None and process.proc.poll() is not None:
            problems.append(f"[{name}] {process.args[1]} exited with {process.proc.returncode}")
        problems += log_problems(name, process.args[1], _read_from(process.log_path, log_marks[process.log_path]))
    summary = f"{name}: {run.tried} requests tried in {number} batches (seeds {FUZZ_SEED}..{FUZZ_SEED + number - 1})"
    statuses = ", ".join(f"{n}x {status or 'no answer'}" for status, n in sorted(run.statuses.items()))
    print(f"{name} answers: {statuses}")
    request.config.stash.setdefault(TRIED, []).append(summary)
    print(summary)
    assert not problems, f"{summary}; {len(problems)} distinct failure(s):\n" + "\n".join(problems)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")
