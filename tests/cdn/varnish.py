"""A real `varnishd` in front of a real origin, for the CDN tests.

`VarnishProcess` copies `deploy/cdn/varnish.vcl` with the backend's `.host`/`.port` pointed at the
origin under test, starts `varnishd -F` on a free loopback port (`-a 127.0.0.1:0`, the port read back
with `varnishadm debug.listen_address`), and stops it with SIGTERM (SIGKILL if it lingers).
`stats()` reads Varnish's own counters with `varnishstat`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from tests.support.processes import terminate

REPO = Path(__file__).resolve().parents[2]
VCL = REPO / "deploy" / "cdn" / "varnish.vcl"
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
FAILED_TRANSACTIONS = "FetchError or RespStatus >= 500 or BerespStatus >= 500"


def find_tool(name: str) -> str | None:
    """`varnishd` lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def vcl_for_backend(source: str, host: str, port: int) -> str:
    """The VCL with the `backend origin { ... }` block's .host and .port replaced."""
    block = re.search(r"^backend origin \{.*?^\}", source, flags=re.M | re.S)
    if block is None:
        raise ValueError("no `backend origin { ... }` block in the VCL")
    body = block.group(0)
    new_body, hosts = re.subn(r'^(\s*\.host\s*=\s*)"[^"]*";', rf'\g<1>"{host}";', body, flags=re.M)
    new_body, ports = re.subn(r'^(\s*\.port\s*=\s*)"[^"]*";', rf'\g<1>"{port}";', new_body, flags=re.M)
    if hosts != 1 or ports != 1:
        raise ValueError("the backend block must have exactly one .host and one .port line")
    return source[: block.start()] + new_body + source[block.end() :]


class VarnishProcess:
    def __init__(self, workdir: str | os.PathLike[str], backend_url: str, vcl: Path = VCL) -> None:
        varnishd = find_tool("varnishd")
        if varnishd is None:
            raise FileNotFoundError("varnishd is not installed (apt-get install -y varnish)")
        self.varnishd = varnishd
        self.varnishadm = find_tool("varnishadm") or "varnishadm"
        self.varnishstat = find_tool("varnishstat") or "varnishstat"
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = str(self.dir / "varnish")  # -n: shared memory, secret, compiled VCL
        self.vcl_path = self.dir / "test.vcl"
        self.log_path = self.dir / "varnishd.log"
        backend = urlsplit(backend_url)
        assert backend.hostname and backend.port, backend_url
        self.vcl_path.write_text(vcl_for_backend(vcl.read_text(), backend.hostname, backend.port))
        self.errors_path = self.dir / "varnishlog-errors.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.errlog: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> Self:
        args = [
            self.varnishd,
            "-F",  # foreground: the child of this test, not a daemon
            "-j",
            "none",  # no privilege separation: the work dir may be unreadable to a varnish user
            "-n",
            self.name,
            "-a",
            "127.0.0.1:0",
            "-T",
            "127.0.0.1:0",
            "-f",
            str(self.vcl_path),
            "-s",
            "malloc,64m",
            "-p",
            "vsl_space=8M",  # the shared-memory log: 80 MB by default, needless here
        ]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            port = self._listen_port()
            if port:
                self.url = f"http://127.0.0.1:{port}"
                self._start_error_log()
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"varnishd did not start; log:\n{self.log_path.read_text(errors='replace')}")

    def _start_error_log(self) -> None:
        """Keep every failed transaction (fetch errors, 5xx) in `errors_path`, for post-mortems."""
        varnishlog = find_tool("varnishlog")
        if varnishlog is None:
            return
        out = open(self.errors_path, "ab")
        self.errlog = subprocess.Popen(
            [varnishlog, "-n", self.name, "-g", "request", "-q", FAILED_TRANSACTIONS],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def errors(self) -> str:
        """What the error log has caught so far (give varnishlog a moment to write it)."""
        try:
            return self.errors_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _listen_port(self) -> int | None:
        try:
            out = subprocess.run(
                [self.varnishadm, "-n", self.name, "-t", "5", "debug.listen_address"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        match = re.search(r"127\.0\.0\.1 (\d+)", out.stdout)
        return int(match.group(1)) if match else None

    def stats(self) -> dict[str, int]:
        """Varnish's counters (`MAIN.backend_req`, `MAIN.busy_sleep`, ...) as a flat dict."""
        out = subprocess.run(
            [self.varnishstat, "-n", self.name, "-1", "-j"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        data = json.loads(out.stdout)
        counters = data.get("counters", data)  # 6.5+ nests them; older versions do not
        return {k: int(v["value"]) for k, v in counters.items() if isinstance(v, dict) and "value" in v}

    def stop(self, timeout: float = 20.0) -> None:
        if self.errlog is not None and self.errlog.poll() is None:
            self.errlog.terminate()
            try:
                self.errlog.wait(5)
            except subprocess.TimeoutExpired:
                self.errlog.kill()
                self.errlog.wait(5)
        if self.proc is not None:
            terminate(self.proc, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
