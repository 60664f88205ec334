"""A real `nginx` with deploy/cdn/nginx.conf in front of a real origin (or edge), for the CDN tests.

`NginxProcess` copies the deployed configuration and rewrites only its deployment-specific lines:
the `listen` line (a free loopback port), the `server` lines of `upstream ds_upstream` (the process
under test), the `proxy_cache_path` directory, the log files, `user` (workers run as root when
the tests do, since pytest's temporary directories are private to their owner), and a smaller
worker_processes / worker_connections. Everything else,
the caching policy included, is tested exactly as shipped. It runs `nginx -p <dir> -c <conf>
-g 'daemon off; pid <dir>/nginx.pid;'` in the foreground and stops it with SIGTERM (SIGKILL if it
lingers). The configuration also serves nginx's `stub_status` on /nginx_status (loopback only).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from tests.support.processes import terminate

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "deploy" / "cdn" / "nginx.conf"
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/nginx/sbin")


def find_nginx() -> str | None:
    """`nginx` lives in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    for directory in SBIN:
        candidate = Path(directory) / "nginx"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _sub_once(pattern: str, replacement: str, text: str, what: str, flags: int = re.M) -> str:
    new, count = re.subn(pattern, replacement, text, flags=flags)
    if count != 1:
        raise ValueError(f"expected exactly one {what} in {CONF.name}, found {count}")
    return new


def conf_for_test(source: str, *, port: int, upstream: str, workdir: Path, tls: tuple[Path, Path] | None = None) -> str:
    """The shipped configuration with only its deployment-specific lines pointed at `workdir`.

    `listen` keeps its parameters (`ssl http2`); with `tls` (certificate chain, key), the
    `ssl_certificate` and `ssl_certificate_key` lines name them (deploy/cdn/nginx-tls.conf).
    """
    text = _sub_once(r"^(\s*)listen\s+[^\s;]+([^;]*);", rf"\g<1>listen 127.0.0.1:{port}\g<2>;", source, "`listen` line")
    if tls is not None:
        text = _sub_once(r"^(\s*ssl_certificate\s+)\S+;", rf"\g<1>{tls[0]};", text, "`ssl_certificate`")
        text = _sub_once(r"^(\s*ssl_certificate_key\s+)\S+;", rf"\g<1>{tls[1]};", text, "`ssl_certificate_key`")

    block = re.search(r"^(\s*)upstream ds_upstream \{.*?^\1\}", text, flags=re.M | re.S)
    if block is None:
        raise ValueError("no `upstream ds_upstream { ... }` block")
    body, servers = re.subn(r"^(\s*)server\s+[^;]*;\n", "", block.group(0), flags=re.M)
    if servers < 1:
        raise ValueError("no `server` line in `upstream ds_upstream`")
    body = body.replace("upstream ds_upstream {\n", f"upstream ds_upstream {{\n        server {upstream};\n", 1)
    text = text[: block.start()] + body + text[block.end() :]

    if "proxy_cache_path" in text:  # (nginx-tls.conf caches nothing)
        cache = workdir / "cache"
        text = _sub_once(r"^(\s*proxy_cache_path\s+)\S+", rf"\g<1>{cache}", text, "`proxy_cache_path`")
    text = _sub_once(r"^(\s*error_log\s+)\S+", rf"\g<1>{workdir / 'error.log'}", text, "main `error_log`")
    text = _sub_once(r"^(\s*access_log\s+)/\S+", rf"\g<1>{workdir / 'access.log'}", text, "`access_log` to a file")
    user = "root" if os.geteuid() == 0 else None
    if user:
        text = _sub_once(r"^user\s+[^;]*;", f"user {user};", text, "`user` line")
    else:
        text = _sub_once(r"^user\s+[^;]*;\n", "", text, "`user` line")
    # The tests need few connections; the shipped 64 Ki per worker preallocates ~30 MB each.
    text = re.sub(r"^(\s*worker_connections\s+)\d+;", r"\g<1>4096;", text, flags=re.M)
    text = re.sub(r"^worker_processes\s+[^;]*;", "worker_processes 2;", text, flags=re.M)
    return text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NginxProcess:
    def __init__(
        self,
        workdir: str | os.PathLike[str],
        upstream_url: str,
        conf: Path = CONF,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        nginx = find_nginx()
        if nginx is None:
            raise FileNotFoundError("nginx is not installed (apt-get install -y nginx)")
        self.nginx = nginx
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cache").mkdir(exist_ok=True)
        self.conf_source = conf.read_text()
        backend = urlsplit(upstream_url)
        assert backend.hostname and backend.port, upstream_url
        self.upstream = f"{backend.hostname}:{backend.port}"
        self.tls = tls  # (certificate chain, key): the `listen` line must say `ssl`
        self.conf_path = self.dir / "nginx.conf"
        self.log_path = self.dir / "nginx.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def _args(self) -> list[str]:
        return [
            self.nginx,
            "-p",
            str(self.dir),
            "-c",
            str(self.conf_path),
            "-e",
            str(self.dir / "error.log"),  # before the configuration is read
            "-g",
            f"daemon off; pid {self.dir / 'nginx.pid'};",
        ]

    def start(self, timeout: float = 30.0) -> Self:
        for _ in range(5):  # the free port may be taken between choosing and binding it
            port = _free_port()
            self.conf_path.write_text(
                conf_for_test(self.conf_source, port=port, upstream=self.upstream, workdir=self.dir, tls=self.tls)
            )
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _listening(port):
                    self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
                    return self
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in self.logs():
                break
        raise RuntimeError(f"nginx did not start; log:\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for name in ("nginx.out", "error.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout)  # fast shutdown: open long-polls are cut

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
