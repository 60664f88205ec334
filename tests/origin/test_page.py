"""The live page (origin/page.py, origin/ui/index.html): in a real headless Chromium, every message
appended while the origin restarts appears exactly once, in order (the page's tail resumes from
the last offset it showed); a protected stream opens with a pasted token; the page is served
under a Content-Security-Policy that allows its own inline code and nothing else.

The page on a long stream (first render, frames, earlier pages) is in test_page_at_scale.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path

import aiohttp
import pytest

from plugin_streams.origin.page import content_security_policy
from tests.support.browser import Browser, available
from tests.support.credentials import bearer
from tests.support.memory_origin import MemoryClient
from tests.support.processes import OriginProcess

needs_chromium = pytest.mark.skipif(not available(), reason="chromium is not installed (scripts/install --test)")
MESSAGES = 60


async def append_until_done(url: str, values: list[int]) -> None:
    """One producer appending each value exactly once, retrying through the restart."""
    async with aiohttp.ClientSession() as session:
        for seq, value in enumerate(values):
            headers = {
                "Content-Type": "application/json",
                "Producer-Id": "page-test",
                "Producer-Epoch": "0",
                "Producer-Seq": str(seq),
            }
            for _ in range(200):
                try:
                    async with session.post(url, data=json.dumps({"n": value}), headers=headers) as r:
                        if r.status in (200, 204):
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"append {seq} never succeeded")
            await asyncio.sleep(0.03)


@needs_chromium
async def test_page_tails_exactly_once_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    origin = OriginProcess(data_dir).start()
    port = origin.url.rsplit(":", 1)[1]
    stream = origin.stream_url + "room/page"
    async with (
        aiohttp.ClientSession() as session,
        session.put(stream, headers={"Content-Type": "application/json"}) as r,
    ):
        assert r.status == 201
    try:
        async with Browser() as browser:
            page = await browser.open(f"{origin.url}/ui/?stream=room%2Fpage")
            await page.wait_for("!!(window.dsPage && window.dsPage.source)")
            writer = asyncio.ensure_future(append_until_done(stream, list(range(MESSAGES))))
            await asyncio.sleep(0.8)
            origin.stop()  # SIGTERM, then the same port and data again
            await asyncio.sleep(0.5)
            origin = OriginProcess(data_dir, "--port", port).start()
            await asyncio.wait_for(writer, 60)  # noqa: TID251
            shown: list[dict[str, int]] = []
            for _ in range(200):
                shown = await page.evaluate("window.dsPage.messages.map(m => JSON.parse(m.data))")
                if len(shown) >= MESSAGES:
                    break
                await asyncio.sleep(0.1)
            assert shown == [{"n": n} for n in range(MESSAGES)]
            assert await page.evaluate("window.dsPage.duplicates") == 0
            names = await page.evaluate("Array.from(document.querySelectorAll('nav a')).map(a => a.textContent)")
            assert "room/page" in names
    finally:
        origin.stop()


# -- the Content-Security-Policy (origin/page.py) ---------------------------------------------------


async def test_page_allows_only_its_own_inline_script_and_style(memory_client: MemoryClient) -> None:
    client = await memory_client()
    r = await client.get("/ui/")
    assert r.status == 200
    html = await r.read()
    policy = dict(part.strip().split(" ", 1) for part in r.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    for kind in ("script", "style"):
        blocks = re.findall(rb"<%s>(.*?)</%s>" % (kind.encode(), kind.encode()), html, re.DOTALL)
        assert len(blocks) == 1  # one self-contained file: no src=, no link rel=stylesheet
        digest = base64.b64encode(hashlib.sha256(blocks[0]).digest()).decode()
        assert policy[f"{kind}-src"] == f"'sha256-{digest}'"
    assert b" src=" not in html and b"<link" not in html and b"http" not in html.replace(b"http-equiv", b"")
    assert r.headers["Referrer-Policy"] == "no-referrer"


def test_a_policy_without_inline_code_allows_none() -> None:
    policy = content_security_policy(b"<html><body>hi</body></html>")
    assert "script-src 'none'" in policy and "style-src 'none'" in policy


# -- a protected stream, with a pasted token ----------------------------------------------------------

POLICY = """
[[token]]
name = "admin"
token = "root-token-123"
admin = [""]

[[token]]
name = "reader"
token = "reader-token-456"
read = ["app/"]
"""
READER = "reader-token-456"
SECRET = "app/secret"


@needs_chromium
async def test_protected_stream_opens_with_a_pasted_token_kept_in_the_page_only(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    admin = bearer("root-token-123")
    with OriginProcess(tmp_path / "data", "--auth-config", str(tmp_path / "policy.toml")) as origin:
        api = origin.url + "/streams/api/v1/streams"
        async with aiohttp.ClientSession() as http:
            async with http.post(api, json={"name": SECRET}, headers=admin) as r:
                assert r.status == 201
            async with http.post(f"{api}/app%2Fsecret/append", data="[1, 2, 3]", headers=admin) as r:
                assert r.status == 200
            async with Browser() as browser:
                page = await browser.open(f"{origin.url}/ui/?stream=app%2Fsecret")
                # Without a token: told why, nothing shown, nothing listed.
                await page.wait_for("window.dsPage && window.dsPage.error")
                assert "token" in await page.evaluate("document.getElementById('status').textContent")
                assert await page.evaluate("window.dsPage.messages.length") == 0
                assert await page.evaluate("getComputedStyle(document.body).display") == "grid"  # CSS ran
                # Paste a reader's token: the page reads, lists and tails with it.
                await page.evaluate(
                    f"document.getElementById('token').value = {json.dumps(READER)};"
                    "document.getElementById('use-token').click()"
                )
                await page.wait_for("window.dsPage.messages.length === 3 && !!window.dsPage.source")
                async with http.post(f"{api}/app%2Fsecret/append", data="4", headers=admin) as r:
                    assert r.status == 200
                await page.wait_for("window.dsPage.messages.length === 4")
                shown = await page.evaluate("window.dsPage.messages.map(m => JSON.parse(m.data))")
                assert shown == [1, 2, 3, 4]
                await page.wait_for("document.getElementById('streams').textContent.includes('app/secret')")
                details = await page.evaluate("document.getElementById('details').textContent")
                assert "application/json" in details
                # Kept in page memory only: nowhere a later visit or another page could read it.
                kept = await page.evaluate(
                    "JSON.stringify([localStorage.length, sessionStorage.length, document.cookie, location.href,"
                    " document.getElementById('token').value, document.documentElement.outerHTML, window.dsPage])"
                )
                assert READER not in kept
                assert json.loads(kept)[:2] == [0, 0]
