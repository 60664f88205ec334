"""Run the Durable Streams conformance suite against a running server.

The suite is the npm package ``@durable-streams/server-conformance-tests`` (pinned in
``package.json`` / ``package-lock.json`` next to this file). Its own CLI is broken when installed
from npm, so ``conformance.test.mjs`` calls ``runConformanceTests`` and vitest runs that file with
the JSON reporter; this module parses the JSON report into a :class:`SuiteResult`.

Usable as a library::

    from run_suite import run_suite
    result = run_suite("http://127.0.0.1:4437")
    assert result.ok, result.summary()

or from the command line (exit status 0 only when nothing failed)::

    python tests/conformance/run_suite.py http://127.0.0.1:4437 [-t "SSE Mode"]

The server under test must use a short long-poll timeout (500 ms to 1 s): the suite has tests
that wait for a long-poll to time out inside vitest's default 5 s test limit.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

CONFORMANCE_DIR = Path(__file__).resolve().parent
TEST_FILE = "conformance.test.mjs"

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Kept on the result for diagnostics when vitest itself fails.
_OUTPUT_TAIL_CHARS = 4000


class ConformanceError(RuntimeError):
    """The suite could not be run (npm/node missing, install failed, no report, timeout)."""


@dataclass(frozen=True)
class FailedTest:
    name: str
    """Full test name: describe-block titles and the test title joined by spaces."""
    message: str
    """First line of the first failure message (usually ``AssertionError: ...``)."""


@dataclass(frozen=True)
class SuiteResult:
    base_url: str
    passed: int
    failed: int
    skipped: int
    failures: tuple[FailedTest, ...] = ()
    errors: tuple[str, ...] = ()
    """Errors outside individual tests (the test file failed to load, unhandled errors)."""
    returncode: int = 0
    duration_s: float = 0.0
    output_tail: str = field(default="", repr=False)
    """The end of vitest's combined stdout/stderr, for diagnostics."""

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    @property
    def failed_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.failures)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors and self.returncode == 0 and self.passed > 0

    def summary(self) -> str:
        lines = [
            f"conformance suite against {self.base_url}: "
            f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped "
            f"({self.total} total) in {self.duration_s:.1f}s"
        ]
        for f in self.failures:
            lines.append(f"  FAIL {f.name}")
            if f.message:
                lines.append(f"       {f.message}")
        for e in self.errors:
            lines.append(f"  ERROR {e}")
        if self.returncode != 0 and not self.failures and not self.errors:
            lines.append(f"  vitest exited with status {self.returncode}")
        return "\n".join(lines)


def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConformanceError(f"{name!r} not found on PATH; Node.js >= 20.19 and npm are required")
    return path


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialises concurrent ensure_installed() calls (e.g. parallel test workers)."""
    lock_path = CONFORMANCE_DIR / ".install.lock"
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_installed() -> bool:
    # npm writes node_modules/.package-lock.json (the "hidden lockfile") on every install.
    marker = CONFORMANCE_DIR / "node_modules" / ".package-lock.json"
    lock = CONFORMANCE_DIR / "package-lock.json"
    needed = [
        marker,
        CONFORMANCE_DIR / "node_modules" / "vitest" / "package.json",
        CONFORMANCE_DIR / "node_modules" / "@durable-streams" / "server-conformance-tests" / "package.json",
        CONFORMANCE_DIR / "node_modules" / "@durable-streams" / "server" / "package.json",
    ]
    if not all(p.exists() for p in needed):
        return False
    return marker.stat().st_mtime >= lock.stat().st_mtime


def ensure_installed(*, timeout_s: float = 600) -> None:
    """Run ``npm ci`` in tests/conformance unless node_modules is present and up to date.

    Up to date means node_modules/.package-lock.json is not older than package-lock.json.
    Idempotent and fast (a few stat calls) when nothing needs doing.
    """
    if _is_installed():
        return
    with _install_lock():
        if _is_installed():  # another process installed while we waited
            return
        npm = _which("npm")
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CONFORMANCE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "CI": "true", "npm_config_update_notifier": "false"},
        )
        if proc.returncode != 0:
            raise ConformanceError(f"npm ci failed in {CONFORMANCE_DIR} (exit {proc.returncode}):\n{proc.stdout}")
        # Make the freshness check robust against coarse mtimes / clock skew.
        marker = CONFORMANCE_DIR / "node_modules" / ".package-lock.json"
        if marker.exists():
            os.utime(marker)


def _first_line(text: str) -> str:
    for line in _ANSI_RE.sub("", text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _kill_group(proc: subprocess.Popen) -> None:
    """Terminate vitest and its worker processes (they share the new session/process group)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def check_reachable(base_url: str, timeout_s: float = 5) -> None:
    """Fail fast (instead of ~330 slow fetch failures) when nothing listens at base_url."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConformanceError(f"cannot connect to {parts.hostname}:{port} ({exc}); is the server running?") from None


def parse_report(
    report: dict, *, base_url: str, returncode: int = 0, duration_s: float = 0.0, output_tail: str = ""
) -> SuiteResult:
    """Turn a vitest ``--reporter=json`` report into a SuiteResult."""
    passed = failed = skipped = 0
    failures: list[FailedTest] = []
    errors: list[str] = []
    for file_result in report.get("testResults", []):
        assertions = file_result.get("assertionResults", [])
        for a in assertions:
            status = a.get("status")
            if status == "passed":
                passed += 1
            elif status == "failed":
                failed += 1
                msgs = a.get("failureMessages") or []
                failures.append(
                    FailedTest(
                        name=a.get("fullName") or a.get("title", "?"), message=_first_line(msgs[0]) if msgs else ""
                    )
                )
            else:  # skipped, pending, todo, disabled
                skipped += 1
        message = file_result.get("message") or ""
        if file_result.get("status") == "failed" and message:
            errors.append(f"{Path(file_result.get('name', '?')).name}: {_first_line(message)}")
        elif file_result.get("status") == "failed" and not assertions:
            errors.append(f"{Path(file_result.get('name', '?')).name}: failed without running tests")
    if not report.get("testResults"):
        errors.append("vitest found no test results")
    return SuiteResult(
        base_url=base_url,
        passed=passed,
        failed=failed,
        skipped=skipped,
        failures=tuple(failures),
        errors=tuple(errors),
        returncode=returncode,
        duration_s=duration_s,
        output_tail=output_tail,
    )


def run_suite(
    base_url: str,
    *,
    timeout_s: float = 600,
    long_poll_ms: int = 500,
    test_name_pattern: str | None = None,
    extra_args: Sequence[str] = (),
    install: bool = True,
    subscriptions: bool = False,
) -> SuiteResult:
    """Run the whole conformance suite against ``base_url`` and return per-test results.

    ``long_poll_ms`` only sets the vitest timeout of the suite's long-poll tests (value + 1 s);
    the server's own long-poll timeout is configured on the server. ``test_name_pattern`` is
    passed to vitest's ``-t`` (e.g. ``"SSE Mode"``). Raises ConformanceError when the suite
    cannot run at all or exceeds ``timeout_s``; test failures are reported in the result.
    ``subscriptions`` enables the 6 reserved subscription API tests (338 in all instead of 332).
    """
    if not re.match(r"^https?://", base_url):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    base_url = base_url.rstrip("/")
    check_reachable(base_url)
    if install:
        ensure_installed()
    vitest = CONFORMANCE_DIR / "node_modules" / ".bin" / "vitest"
    if not vitest.exists():
        raise ConformanceError(f"{vitest} missing; run ensure_installed() or npm ci in {CONFORMANCE_DIR}")

    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        report_path = Path(tmp) / "report.json"
        log_path = Path(tmp) / "vitest.log"
        cmd = [
            str(vitest),
            "run",
            TEST_FILE,
            "--reporter=json",
            f"--outputFile={report_path}",
            "--watch=false",
            "--color=false",
        ]
        if test_name_pattern:
            cmd += ["-t", test_name_pattern]
        cmd += list(extra_args)
        env = {
            **os.environ,
            "CONFORMANCE_TEST_URL": base_url,
            "CONFORMANCE_LONG_POLL_MS": str(long_poll_ms),
            "CONFORMANCE_SUBSCRIPTIONS": "1" if subscriptions else "0",
            "CI": "true",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
        }
        env.pop("NODE_OPTIONS", None)
        start = time.monotonic()
        with open(log_path, "w+b") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=CONFORMANCE_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise ConformanceError(f"conformance suite did not finish within {timeout_s}s") from None
            except BaseException:
                _kill_group(proc)
                raise
            duration = time.monotonic() - start
            log.seek(0)
            output = _ANSI_RE.sub("", log.read().decode("utf-8", "replace"))
        tail = output[-_OUTPUT_TAIL_CHARS:]
        if not report_path.exists():
            raise ConformanceError(f"vitest wrote no JSON report (exit {returncode}); output:\n{tail}")
        report = json.loads(report_path.read_text("utf-8"))
    return parse_report(report, base_url=base_url, returncode=returncode, duration_s=duration, output_tail=tail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="base URL of the server under test, e.g. http://127.0.0.1:4437")
    parser.add_argument("-t", "--test-name-pattern", help="only run tests whose full name matches (vitest -t)")
    parser.add_argument("--timeout", type=float, default=600, help="overall timeout in seconds (default 600)")
    parser.add_argument(
        "--long-poll-ms",
        type=int,
        default=500,
        help="long-poll timeout the server uses (sets vitest timeouts only; default 500)",
    )
    parser.add_argument("--subscriptions", action="store_true", help="also run the reserved subscription API tests")
    args = parser.parse_args(argv)
    try:
        result = run_suite(
            args.base_url,
            timeout_s=args.timeout,
            long_poll_ms=args.long_poll_ms,
            test_name_pattern=args.test_name_pattern,
            subscriptions=args.subscriptions,
        )
    except ConformanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if result.errors or (result.returncode != 0 and not result.failures):
        print(result.output_tail, file=sys.stderr)
    # Plain closing line, understood by CI whatever the runner.
    print(f"{result.passed} passed, {result.failed} failed, {result.skipped} skipped")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
