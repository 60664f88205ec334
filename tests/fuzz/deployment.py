"""The processes the fuzzer talks to, their seed streams, and the /healthz probe watching them.

Two deployments, each an origin with an edge in front: one open, one with `--auth-config` on
both; plus an edge *without* a policy in front of the protected origin (a supported set-up in
which the edge must still never serve what the origin would refuse); and an open origin on the
postgres engine (a PostgreSQL server of its own), whose storage sees the same odd input.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from plugin_streams.shared.offsets import FIELD_WIDTH
from tests.fuzz.strategies import Surface
from tests.support.credentials import bearer
from tests.support.postgres import PgServer, create_database, missing_postgres, require
from tests.support.processes import ProcessGroup, ServerProcess

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "fuzz-signing-key"
ADMIN = "t-admin"
POLICY = f"""
public_read = ["public/"]
signing_key = "{SIGNING_KEY}"

[[token]]
name = "admin"
token = "{ADMIN}"
admin = [""]

[[token]]
name = "writer"
token = "t-writer"
write = ["app/"]

[[token]]
name = "reader"
token = "t-reader"
read = ["app/", "public/"]
"""
TOKENS = (ADMIN, "t-writer", "t-reader")
SEED_STREAMS = {
    "app/json": ("application/json", [b'{"n": 1}', b"[1, 2, 3]", b'"three"']),
    "app/text": ("text/plain", [b"hello ", b"world\n"]),
    "app/bin": ("application/octet-stream", [bytes(range(256)), b"\x00" * 5000]),
    "public/json": ("application/json", [b"[{}, {}, {}]"]),
    "other/json": ("application/json", [b"{}"]),
}
LONG_POLL_TIMEOUT = 0.3


@dataclass
class Target:
    name: str
    process: ServerProcess
    surface: Surface
    logs: list[ServerProcess]  # whose stderr to check after fuzzing it


@dataclass
class Deployment:
    group: ProcessGroup
    targets: dict[str, Target] = field(default_factory=dict)
    probe: Probe | None = None
    database: PgServer | None = None  # of the postgres origin, closed with the processes

    def stop(self) -> None:
        self.group.stop_all()
        if self.database is not None:
            self.database.close()


def start(tmp: Path) -> Deployment:
    group = ProcessGroup(tmp, LONG_POLL_TIMEOUT)
    deployment = Deployment(group)
    try:
        _start_processes(tmp, deployment)
    except BaseException:
        deployment.stop()
        raise
    return deployment


def _start_processes(tmp: Path, deployment: Deployment) -> None:
    group = deployment.group
    policy = tmp / "auth.toml"
    policy.write_text(POLICY)
    open_origin = group.origin("--fsync", "never", data_dir=tmp / "open-data")
    open_edge = group.edge(open_origin.url)
    auth_origin = group.origin("--fsync", "never", "--auth-config", str(policy), data_dir=tmp / "auth-data")
    auth_edge = group.edge(auth_origin.url, "--auth-config", str(policy))
    bare_edge = group.edge(auth_origin.url)
    require(missing_postgres())
    deployment.database = PgServer.create(name="fuzz")
    pg_origin = group.origin(
        "--engine", "postgres", "--database-url", create_database(deployment.database), data_dir=tmp / "pg-data"
    )
    open_streams = seed(open_origin.url, None)
    auth_streams = seed(auth_origin.url, ADMIN)
    key = SIGNING_KEY.encode()
    for name, process, streams, tokens, signing, logs in (
        ("origin-open", open_origin, open_streams, (), None, [open_origin]),
        ("origin-postgres", pg_origin, seed(pg_origin.url, None), (), None, [pg_origin]),
        ("edge-open", open_edge, open_streams, (), None, [open_edge, open_origin]),
        ("origin-auth", auth_origin, auth_streams, TOKENS, key, [auth_origin]),
        ("edge-auth", auth_edge, auth_streams, TOKENS, key, [auth_edge, auth_origin]),
        ("bare-edge-auth-origin", bare_edge, auth_streams, TOKENS, key, [bare_edge, auth_origin]),
    ):
        parts = urlsplit(process.url)
        assert parts.hostname is not None and parts.port is not None
        surface = Surface(parts.hostname, parts.port, streams, tokens, signing)
        deployment.targets[name] = Target(name, process, surface, logs)


def seed(url: str, token: str | None) -> dict[str, str]:
    """(Re)create the seed streams with a few messages; returns name -> offset generation."""
    parts = urlsplit(url)
    auth = bearer(token) if token else {}
    generations: dict[str, str] = {}
    for name, (content_type, messages) in SEED_STREAMS.items():
        status, headers = _call(parts, "PUT", f"/v1/stream/{name}", {"Content-Type": content_type, **auth})
        if status not in (200, 201):  # re-created by the fuzzer with other settings: start again
            _call(parts, "DELETE", f"/v1/stream/{name}", auth)
            status, headers = _call(parts, "PUT", f"/v1/stream/{name}", {"Content-Type": content_type, **auth})
        if status not in (200, 201):
            continue  # closed, or a fork: the fuzz still goes on; offsets are drawn at random
        for message in messages if status == 201 else ():
            _call(parts, "POST", f"/v1/stream/{name}", {"Content-Type": content_type, **auth}, message)
        generations[name] = headers.get("stream-next-offset", "1_")[:FIELD_WIDTH]
    return generations


def _call(
    parts: SplitResult, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


class Probe:
    """tests/fuzz/probe.py as a child process; slow polls collected as they are reported."""

    def __init__(self, urls: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.probe", *urls], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.slow: list[dict] = []
        self.worst: dict[str, float] = {}
        self._lock = threading.Lock()
        assert self.proc.stdout is not None
        json.loads(self.proc.stdout.readline())  # {"started": ...}: polling from now on
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._lock:
                if "worst" in event:
                    self.worst = event["worst"]
                else:
                    self.slow.append(event)

    def take(self) -> list[dict]:
        """Slow polls reported since the last call."""
        with self._lock:
            taken, self.slow = self.slow, []
        return taken

    def stop(self) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()  # the reader is done with it; unclosed, it warns at collection
        return self.worst
