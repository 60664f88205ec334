"""The live page in a real headless Chromium: every message appended while the origin restarts
appears exactly once, in order (EventSource resumes through Last-Event-ID, or the page reopens)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.browser import Browser, available
from tests.support.processes import OriginProcess

pytestmark = pytest.mark.skipif(not available(), reason="chromium is not installed (scripts/install --test)")
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
