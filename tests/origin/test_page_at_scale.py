"""The live page on a long stream, in headless Chromium: 50,000 messages, then 100 more per second.

One origin and one stream for the module (filled with JSON batch appends: five requests). Each
test opens its own page:
- the page opens at the tail: time from navigation start to the first rendered row (measured in
  the page with performance.now()) under one second, and only the last page in the DOM;
- while 100 messages per second arrive, animation frames keep coming: p95 frame gap bounded;
  the list keeps its newest ROW_CAP rows, every message arrives once, in order;
- "load earlier" pages join the shown rows with no gap and no duplicate;
- scrolled up, the list stops at HARD_CAP rows (the newest leave), keeps live arrivals aside, and
  "jump to latest" shows the newest page again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.browser import Browser, Page, available
from tests.support.processes import OriginProcess

pytestmark = pytest.mark.skipif(not available(), reason="chromium is not installed (scripts/install --test)")

MESSAGES = 50_000
BATCH = 10_000  # the REST append's batch cap
NAME = "load/history"
PAGE_SIZE = 200  # the page's PAGE
ROW_CAP = 1000  # the page's ROW_CAP
HARD_CAP = 5000  # the page's HARD_CAP
RATE = 100  # messages per second while the frames are watched
WATCH_S = 5.0
#: p95 gap between animation frames while messages arrive: two 60 Hz frames (33.3 ms), so 95% of
#: frames come at 30 fps or better, and no more than one vsync is ever missed in a row at p95.
#: The page renders each frame's arrivals in one fragment (one or two rows at 100/s) in a list
#: with `contain: strict`; measured p95 16.8 ms. Without the containment every scroll repainted
#: the page and p95 was 33.2 ms; rendering the whole history (the old page) blocked for seconds.
P95_FRAME_GAP_MS = 34.0
FIRST_RENDER_MS = 1000.0

WATCH_FRAMES = """
new Promise((resolve) => {
  const gaps = [], longTasks = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push(e.duration);
  });
  observer.observe({ type: "longtask" });
  const end = performance.now() + %d;
  let last = null;
  const tick = (now) => {
    if (last !== null) gaps.push(now - last);
    last = now;
    if (now < end) requestAnimationFrame(tick);
    else { observer.disconnect(); resolve({ gaps, longTasks }); }
  };
  requestAnimationFrame(tick);
})
"""
SHOWN = "window.dsPage.messages.map(m => [m.offset, m.prev, JSON.parse(m.data).n])"


def message(n: int) -> dict[str, Any]:
    return {"n": n, "text": f"message {n} of the load test, with some words to make it a realistic row"}


async def fill(api: str) -> list[str]:
    """Create the stream and append MESSAGES in batches; every message's offset, in order."""
    offsets: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with http.post(api, json={"name": NAME}) as r:
            assert r.status == 201, await r.text()
        for first in range(0, MESSAGES, BATCH):
            body = json.dumps([message(n) for n in range(first, first + BATCH)])
            async with http.post(f"{api}/{NAME.replace('/', '%2F')}/append", data=body) as r:
                assert r.status == 200, await r.text()
                offsets += (await r.json())["offsets"]
    return offsets


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OriginProcess, list[str]]]:
    root: Path = tmp_path_factory.mktemp("page-scale")
    with OriginProcess(root / "data") as origin:
        offsets = asyncio.run(fill(origin.url + "/streams/api/v1/streams"))
        assert len(offsets) == MESSAGES
        yield origin, offsets


async def open_page(browser: Browser, origin: OriginProcess) -> Page:
    page = await browser.open(f"{origin.url}/ui/?stream={NAME.replace('/', '%2F')}")
    await page.wait_for("!!(window.dsPage && window.dsPage.timings.firstFrame !== null && window.dsPage.source)")
    return page


async def append_at_rate(api: str, first: int, seconds: float) -> list[str]:
    """Single appends at RATE per second (on a schedule, so slow answers do not lower the rate)."""
    offsets = []
    start = time.monotonic()
    async with aiohttp.ClientSession() as http:
        for i in range(int(seconds * RATE)):
            delay = start + i / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with http.post(f"{api}/{NAME.replace('/', '%2F')}/append", json=message(first + i)) as r:
                assert r.status == 200, await r.text()
                offsets += (await r.json())["offsets"]
    return offsets


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def test_opens_at_the_tail_of_50000_messages_in_under_a_second(
    loaded: tuple[OriginProcess, list[str]],
) -> None:
    origin, offsets = loaded
    async with Browser() as browser:
        page = await open_page(browser, origin)
        timings = await page.evaluate("window.dsPage.timings")
        shown = await page.evaluate(SHOWN)
        rows = await page.evaluate("document.querySelectorAll('#messages li').length")
        earlier = await page.evaluate("!document.getElementById('earlier').disabled")
    print(
        f"\nfirst render with {MESSAGES} messages: rows in the DOM {timings['firstRow']:.0f} ms, "
        f"painted by {timings['firstFrame']:.0f} ms after navigation start"
    )
    assert timings["firstFrame"] < FIRST_RENDER_MS
    assert rows == len(shown) == PAGE_SIZE  # the last page, not the history
    assert [n for _, _, n in shown] == list(range(MESSAGES - PAGE_SIZE, MESSAGES))
    assert [o for o, _, _ in shown] == offsets[-PAGE_SIZE:]
    assert earlier  # and a way back


async def test_frames_keep_coming_while_100_messages_a_second_arrive(loaded: tuple[OriginProcess, list[str]]) -> None:
    origin, _ = loaded
    api = origin.url + "/streams/api/v1/streams"
    first = await current_count(api)
    async with Browser() as browser:
        page = await open_page(browser, origin)
        seconds = WATCH_S + 5  # long enough to push the list past ROW_CAP rows
        writer = asyncio.ensure_future(append_at_rate(api, first, seconds))
        await asyncio.sleep(1.0)
        watched = await page.evaluate(WATCH_FRAMES % int(WATCH_S * 1000))
        offsets = await writer
        await page.wait_for(f"window.dsPage.lastOffset === {json.dumps(offsets[-1])}")
        await page.wait_for("window.dsPage.pending.length === 0")
        shown = await page.evaluate(SHOWN)
        rows = await page.evaluate("document.querySelectorAll('#messages li').length")
        duplicates = await page.evaluate("window.dsPage.duplicates")
    gaps, long_tasks = watched["gaps"], watched["longTasks"]
    p50, p95, worst = percentile(gaps, 0.5), percentile(gaps, 0.95), max(gaps)
    print(
        f"\nframes while {RATE} messages/s arrive ({WATCH_S:.0f} s): {len(gaps)} frames, "
        f"gap p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms; "
        f"long tasks {len(long_tasks)} (total {sum(long_tasks):.0f} ms)"
    )
    assert len(gaps) > WATCH_S * 20  # frames were produced at all (60 Hz gives about 300)
    assert p95 < P95_FRAME_GAP_MS
    assert rows == len(shown) == ROW_CAP  # the oldest rows left the DOM
    assert [n for _, _, n in shown] == list(range(first + len(offsets) - ROW_CAP, first + len(offsets)))
    assert [o for o, _, _ in shown][-len(offsets) :] == offsets
    assert all(prev == before for (_, prev, _), (before, _, _) in zip(shown[1:], shown, strict=False))
    assert duplicates == 0


async def test_load_earlier_joins_pages_with_no_gap_or_duplicate(loaded: tuple[OriginProcess, list[str]]) -> None:
    origin, _ = loaded
    api = origin.url + "/streams/api/v1/streams"
    async with Browser() as browser:
        page = await open_page(browser, origin)
        for clicks in range(1, 4):
            await page.evaluate("document.getElementById('earlier').click()")
            await page.wait_for(f"window.dsPage.messages.length === {PAGE_SIZE * (clicks + 1)}")
        shown = await page.evaluate(SHOWN)
        rows = await page.evaluate("document.querySelectorAll('#messages li').length")
    assert rows == len(shown) == 4 * PAGE_SIZE
    numbers = [n for _, _, n in shown]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no gap, no duplicate
    # ...and exactly what forward reads from the same place give, offsets included.
    forward = await read_forward(api, shown[0][1], len(shown))
    assert [(m["offset"], m["data"]["n"]) for m in forward] == [(o, n) for o, _, n in shown]


async def test_scrolled_up_the_list_stops_at_its_cap_and_jumps_back_to_the_latest(
    loaded: tuple[OriginProcess, list[str]],
) -> None:
    origin, _ = loaded
    api = origin.url + "/streams/api/v1/streams"
    async with Browser() as browser:
        page = await open_page(browser, origin)
        newest = (await page.evaluate(SHOWN))[-1][2]
        clicks = HARD_CAP // PAGE_SIZE + 1
        for _ in range(clicks):
            await page.evaluate("document.getElementById('earlier').click()")
            await page.wait_for("!window.dsPage.loadingEarlier")
        assert await page.evaluate("window.dsPage.behind")  # the newest rows left instead
        shown = await page.evaluate(SHOWN)
        assert len(shown) == await page.evaluate("document.querySelectorAll('#messages li').length") == HARD_CAP
        first = newest - PAGE_SIZE * (clicks + 1) + 1  # the oldest page loaded
        assert [n for _, _, n in shown] == list(range(first, first + HARD_CAP))
        # Messages arriving meanwhile are kept aside, not rendered; "jump to latest" shows them after the tail.
        arrived = await append_at_rate(api, newest + 1, 0.05)
        await page.wait_for(f"window.dsPage.newer.length === {len(arrived)}")
        assert await page.evaluate("document.querySelectorAll('#messages li').length") == HARD_CAP
        await page.evaluate("document.getElementById('latest').click()")
        await page.wait_for("!window.dsPage.behind")
        shown = await page.evaluate(SHOWN)
    last = newest + len(arrived)
    assert [n for _, _, n in shown] == list(range(last - PAGE_SIZE + 1, last + 1))  # the newest page, whole
    assert [o for o, _, _ in shown][-len(arrived) :] == arrived


async def read_forward(api: str, after: str, count: int) -> list[dict[str, Any]]:
    """`count` messages after `after`, page by page (a page holds at most one catch-up chunk)."""
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http:
        while len(out) < count:
            params = {"after": after, "limit": str(count - len(out))}
            async with http.get(f"{api}/{NAME.replace('/', '%2F')}/read", params=params) as r:
                page = await r.json()
            out += page["messages"]
            after = page["next_offset"]
    return out


async def current_count(api: str) -> int:
    """How many messages the stream holds now (the tests after the first append to it)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api}/{NAME.replace('/', '%2F')}/read", params={"before": "now", "limit": "1"}) as r,
    ):
        messages = (await r.json())["messages"]
    return int(messages[-1]["data"]["n"]) + 1
