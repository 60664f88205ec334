"""deploy/cdn/nginx-tls.conf: TLS and HTTP/2 terminated by nginx in front of a real edge and origin.

A certificate authority and a server certificate for 127.0.0.1 are made with `openssl` in a
temporary directory; nginx runs the shipped file with them (tests/cdn/nginx.py rewrites only the
port, upstream, paths, user and the two certificate lines). Over https, verified against that CA:
- a REST read and a protocol read with curl over HTTP/2 (`--http2`, and curl reports version 2);
- an SSE tail over HTTP/2 that receives an append's event as it happens (not when the response
  ends), and the same over HTTP/1.1 with aiohttp.

Skipped without nginx, openssl, or a curl built with HTTP/2 (nghttp2).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.cdn.nginx import REPO, NginxProcess, find_nginx
from tests.rest.helpers import append, create, stream_url
from tests.support.processes import EdgeProcess, process_group
from tests.support.sse_reader import SSEReader

CONF = REPO / "deploy" / "cdn" / "nginx-tls.conf"
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")


def curl_has_http2() -> bool:
    if CURL is None:
        return False
    version = subprocess.run([CURL, "--version"], capture_output=True, text=True, check=False).stdout
    return "HTTP2" in version


pytestmark = [
    pytest.mark.skipif(find_nginx() is None, reason="the nginx binary is not installed"),
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed"),
    pytest.mark.skipif(not curl_has_http2(), reason="curl with HTTP/2 support is not installed"),
]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost (P-256 keys: quick to make)."""
    assert OPENSSL is not None
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    key, csr, chain = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=plugin-streams test CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1"],
    ]
    steps[-1] += ["-out", chain, "-extfile", extensions]
    for step in steps:
        subprocess.run([OPENSSL, *map(str, step)], check=True, capture_output=True, timeout=60)
    return Certificates(ca, chain, key)


@dataclass
class Setup:
    https: str  # nginx, over TLS
    edge: EdgeProcess
    certificates: Certificates
    http: aiohttp.ClientSession  # verifies against the test CA

    def curl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        assert CURL is not None
        command = [CURL, "--silent", "--show-error", "--http2", "--cacert", str(self.certificates.ca), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    certificates = make_certificates(tmp_path / "tls")
    with process_group(tmp_path, long_poll_timeout=3.0) as servers:
        origin = servers.origin()
        edge = servers.edge(origin.url)
        with NginxProcess(tmp_path / "nginx", edge.url, conf=CONF, tls=(certificates.chain, certificates.key)) as nginx:
            context = ssl.create_default_context(cafile=str(certificates.ca))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
                yield Setup(nginx.url, edge, certificates, http)


async def test_reads_over_http2_with_a_verified_certificate(setup: Setup) -> None:
    assert setup.https.startswith("https://")
    api = setup.https + "/streams/api/v1"
    name = f"tls/{uuid.uuid4().hex[:8]}"
    async with setup.http.post(api + "/streams", json={"name": name}) as r:
        assert r.status == 201
    await append(setup.http, api, name, "hello")
    done = await asyncio.to_thread(
        setup.curl, "--write-out", "\n%{http_version} %{response_code}", stream_url(api, name, "read") + "?after=-1"
    )
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "2 200"
    assert [m["data"] for m in json.loads(body)["messages"]] == ["hello"]
    protocol = await asyncio.to_thread(
        setup.curl, "--write-out", "\n%{http_version} %{response_code}", f"{setup.https}/v1/stream/{name}?offset=-1"
    )
    assert protocol.stdout.rsplit("\n", 1)[1] == "2 200", protocol.stderr


async def test_an_sse_tail_over_http2_gets_each_event_as_it_happens(setup: Setup) -> None:
    api = setup.https + "/streams/api/v1"
    name = f"tls/{uuid.uuid4().hex[:8]}"
    await create(setup.http, api, name)
    first = await append(setup.http, api, name, "before")
    assert CURL is not None
    command = [CURL, "--silent", "--no-buffer", "--http2", "--cacert", str(setup.certificates.ca), "--dump-header", "-"]
    command += ["--max-time", "15", stream_url(api, name, "tail") + f"?after={first['next_offset']}"]
    tail = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert tail.stdout is not None
    try:
        async with asyncio.timeout(5):
            status_line = await tail.stdout.readline()
        assert status_line.strip() == b"HTTP/2 200", status_line  # (curl prints the status line as it was spoken)
        await asyncio.sleep(0.3)
        sent = time.monotonic()
        await append(setup.http, api, name, "live")
        seen = b""
        async with asyncio.timeout(5):
            while b'"live"' not in seen:
                line = await tail.stdout.readline()
                assert line, f"curl ended before the event: {seen!r}"
                seen += line
        assert time.monotonic() - sent < 2.0, "the event was held back"
        assert b"text/event-stream" in seen and b"data:" in seen
    finally:
        tail.terminate()
        await tail.communicate()


async def test_an_sse_tail_over_http1_through_tls(setup: Setup) -> None:
    api = setup.https + "/streams/api/v1"
    name = f"tls/{uuid.uuid4().hex[:8]}"
    await create(setup.http, api, name)
    first = await append(setup.http, api, name, "before")
    url = stream_url(api, name, "tail")
    async with setup.http.get(url, params={"after": first["next_offset"]}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        reader = SSEReader(r)
        await asyncio.sleep(0.3)
        await append(setup.http, api, name, "live")
        data = None
        while data is None or "live" not in data:
            event = await reader.next(timeout=5)
            assert event is not None
            data = event.data
