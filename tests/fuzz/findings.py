"""What the fuzzer checks in each answer, and the distinct failures it keeps for the report.

A run does not stop at the first failure: one known bug would hide every other. Failures are
grouped by (target, kind, status, route, reason), and for each group the shortest request seen
is kept as its reproducer (its exact bytes, elided when long), so one run lists every distinct
problem, each with a request to replay (`nc host port < request`, or tests/fuzz/wire.py).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fuzz.strategies import Request
from tests.fuzz.wire import Response

TRACEBACK_MARKERS = (b"Traceback", b'File "')
# The one documented 5xx a well-formed request may get: the live-connection limit (origin/limits.py).
OVERLOAD_503 = b"too many live connections"
HEALTHZ_BUDGET = 0.1
TRIED = pytest.StashKey[list[str]]()  # per target: requests tried, for the end-of-run summary
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Finding:
    kind: str
    target: str
    status: int
    route: str
    detail: str
    request: Request
    count: int = 1

    def report(self) -> str:
        return (
            f"[{self.target}] {self.kind} (status {self.status or '-'}) on {self.route}, seen {self.count}x: "
            f"{self.detail}\n    request: {self.request.describe()}"
        )


@dataclass
class Findings:
    target: str
    groups: dict[tuple[str, ...], Finding] = field(default_factory=dict)
    recent: deque[tuple[float, float, Request]] = field(default_factory=lambda: deque(maxlen=500))  # a batch and more

    def add(self, kind: str, status: int, request: Request, detail: str, cause: str = "") -> None:
        """Count a failure; `cause` (where the server raised, from its log) groups across routes."""
        where = route(request.target)
        key = (kind, str(status), cause) if cause else (kind, str(status), where, _shape(detail))
        known = self.groups.get(key)
        if known is None:
            self.groups[key] = Finding(kind, self.target, status, cause or where, detail, request)
            return
        known.count += 1
        if len(request.to_bytes()) < len(known.request.to_bytes()):
            known.request, known.detail = request, detail

    def check(self, request: Request, response: Response, new_logs: Callable[[], str]) -> None:
        body = response.body
        if response.status >= 500 and not (response.status == 503 and OVERLOAD_503 in body):
            self.add("5xx", response.status, request, _text(body), raised_at(new_logs()))
        if any(marker in body for marker in TRACEBACK_MARKERS):
            self.add("traceback in body", response.status, request, _text(body))

    def slow_health(self, poll: dict) -> None:
        """A /healthz poll slower than the budget: blame the requests in flight while it waited."""
        start, end = poll["start"], poll["start"] + poll["latency"]
        overlapping = [(e - s, r) for s, e, r in self.recent if s < end and e > start]
        culprit = max(overlapping, key=lambda x: x[0])[1] if overlapping else Request("-", "(none in flight)", (), b"")
        what = f"/healthz of {poll['url']} took {poll['latency']:.3f} s {poll['error']}".strip()
        self.add("healthz > 100 ms", 0, culprit, what + f" ({len(overlapping)} request(s) in flight)")


def route(target: str) -> str:
    """The route family a target reaches, for grouping (absolute-form marked as such)."""
    prefix = ""
    if target.startswith(("http://", "https://")):
        prefix, target = "absolute-form ", urlsplit(target).path
    path = target.split("?", 1)[0]
    for name, start in (
        ("protocol", "/v1/stream/"),
        ("REST named", "/streams/api/v1/streams/"),
        ("REST list", "/streams/api/v1/streams"),
        ("replication touch", "/v1/replication/touch"),
        ("replication log", "/v1/replication/log/"),
        ("replication streams", "/v1/replication/streams"),
        ("replication changes", "/v1/replication/changes"),
        ("ui", "/ui/"),
        ("healthz", "/healthz"),
        ("readyz", "/readyz"),
        ("metrics", "/metrics"),
    ):
        if path.startswith(start):
            return prefix + name
    return prefix + "other"


_FRAME = re.compile(r'^  File "([^"]+)", line (\d+), in (\S+)', re.MULTILINE)


def raised_at(log: str) -> str:
    """'Error at file:line in function' for the last traceback in `log` (its innermost frame of
    this project, not of a library), or '' when the server logged none."""
    at = log.rfind("Traceback (most recent call last)")
    if at < 0:
        return ""
    trace = log[at:]
    frames = [f for f in _FRAME.findall(trace) if "site-packages" not in f[0] and "/lib/python" not in f[0]]
    exceptions = _EXCEPTION_LINE.findall(trace.split("\n", 1)[-1])
    error = exceptions[0] if exceptions else "?"
    if not frames:
        return error
    path, line, function = frames[-1]
    return f"{error} at {path.removeprefix(str(ROOT) + '/')}:{line} in {function}"


def _text(body: bytes) -> str:
    return body[:300].decode("utf-8", "replace")


def _shape(detail: str) -> str:
    """The reason without its numbers and quoted values, so one bug is one group."""
    return re.sub(r"\d+", "#", re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", detail))[:80]


_LOG_ENTRY = re.compile(r"^(?=\d{4}-\d\d-\d\d[ T])", re.MULTILINE)
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)", re.MULTILINE)
PARSER_ERRORS = "aiohttp.http_exceptions."


def log_problems(target: str, process: str, log: str) -> list[str]:
    """Crash reports in a process's stderr, one per exception type, with the first in full.

    aiohttp logs every request its parser refuses (with a 400) as "Error handling request" with
    a traceback, at ERROR: anyone can fill the log that way, so those are reported too, as one
    group (their answers are checked like any other).
    """
    groups: dict[str, list[str]] = {}
    for entry in _LOG_ENTRY.split(log):
        if "Traceback" not in entry and "Error handling request" not in entry:
            continue
        exceptions = _EXCEPTION_LINE.findall(entry.split("\n", 1)[-1])
        kind = exceptions[-1] if exceptions else entry.splitlines()[0][:100]
        groups.setdefault(PARSER_ERRORS if kind.startswith(PARSER_ERRORS) else kind, []).append(entry)
    problems = []
    for kind, entries in groups.items():
        if kind == PARSER_ERRORS:
            counts = Counter(_EXCEPTION_LINE.findall(e.split("\n", 1)[-1])[-1] for e in entries)
            kind = "requests refused by aiohttp's parser, logged at ERROR with a traceback: " + ", ".join(
                f"{n}x {name.removeprefix(PARSER_ERRORS)}" for name, n in counts.most_common()
            )
        problems.append(f"[{target}] {process} log: {len(entries)}x {kind}; first:\n{_indent(entries[0][:1200])}")
    return problems


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
