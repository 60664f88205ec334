"""Which answers to a read from the start the edge keeps (edge.start_pages), and how the cache
holds them (edge.cache.ChunkCache.put_start / start_page)."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict

from plugin_streams.edge.cache import ChunkCache
from plugin_streams.edge.chunks import START_PAGE, Chunk, ChunkKey, start_scope
from plugin_streams.edge.start_pages import start_page
from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import headers as h

PATH = "/v1/stream/s"
START = "0000000000000002_0000000000000100"
END = "0000000000000002_0000000000065636"
SHORT = "public, max-age=1, stale-while-revalidate=1"


def _reply(status: int = 200, **changes: str | None) -> Reply:
    headers: dict[str, str | None] = {
        h.CONTENT_TYPE: "application/octet-stream",
        h.STREAM_NEXT_OFFSET: END,
        h.ETAG: f'"{START}:{END}"',
        h.CACHE_CONTROL: SHORT,
        h.SURROGATE_KEY: "ds/s",
    }
    headers.update(changes)
    return Reply(status, CIMultiDict((k, v) for k, v in headers.items() if v is not None), b"x" * 1000)


def test_a_complete_answer_is_kept_where_it_begins() -> None:
    chunk = start_page(PATH, _reply())
    assert chunk is not None
    assert chunk.key == ChunkKey(PATH + START_PAGE, 2, 100)
    assert chunk.end == 65636
    assert chunk.lifetime == 1  # the origin's max-age, no longer
    body, headers = chunk.answer(chunk.key.start)
    assert body == b"x" * 1000
    assert headers[h.STREAM_NEXT_OFFSET] == END
    assert headers[h.ETAG] == f'"{START}:{END}"'
    assert headers[h.CACHE_CONTROL] == SHORT
    assert headers[h.SURROGATE_KEY] == "ds/s"
    assert not chunk.covers(200)  # answers only a read from the start


@pytest.mark.parametrize(
    ("status", "changes"),
    [
        (200, {h.STREAM_UP_TO_DATE: "true"}),  # reached the tail: later appends would change it
        (200, {h.STREAM_CLOSED: "true"}),
        (200, {h.CACHE_CONTROL: "no-store"}),
        (200, {h.CACHE_CONTROL: "public, max-age=0"}),
        (200, {h.CACHE_CONTROL: None}),
        (200, {h.ETAG: None}),
        (200, {h.ETAG: f'"{START}:{END}:c"'}),
        (200, {h.ETAG: f"{START}:{END}"}),  # unquoted: not the origin's form
        (200, {h.ETAG: f'"{START}:0000000000000002_0000000000000200"'}),  # not where it ends
        (200, {h.ETAG: f'"0000000000000001_0000000000000100:{END}"'}),  # another generation
        (200, {h.ETAG: f'"{END}:{END}"'}),  # empty
        (200, {h.ETAG: f'"junk:{END}"'}),
        (304, {}),
        (404, {}),
    ],
)
def test_anything_else_is_not_kept(status: int, changes: dict[str, str | None]) -> None:
    assert start_page(PATH, _reply(status, **changes)) is None


def _page(owner: str = PATH, start: int = 100, lifetime: str = SHORT, body: bytes = b"x" * 1000) -> Chunk:
    key = ChunkKey(start_scope(owner), 2, start)
    return Chunk.make(key, start + 65536, body, "application/octet-stream", lifetime, None)


def test_the_cache_holds_one_start_page_per_scope_until_it_expires() -> None:
    cache = ChunkCache(10 * 1024 * 1024)
    scope = start_scope(PATH)
    assert cache.start_page(scope) is None
    cache.put_start(_page(start=100))
    cache.put_start(_page(start=300))  # the start moved (retention): the old page goes
    page = cache.start_page(scope)
    assert page is not None and page.key.start == 300
    assert cache.memory_bytes < 2 * 1000
    assert cache.in_memory(PATH, 2, 300) is None  # never an answer to an explicit offset
    expired = Chunk.make(page.key, page.end, page.body, page.content_type, SHORT, None, stored=time.time() - 1.5)
    cache.put_start(expired)
    assert cache.start_page(scope) is None
    assert cache.memory_bytes == 0  # dropped when found expired


def test_a_start_page_goes_with_its_stream_and_within_the_byte_budget() -> None:
    cache = ChunkCache(10 * 1024 * 1024)
    cache.put_start(_page())
    cache.put_start(_page(owner="/v1/stream/other"))
    cache.drop_stream(PATH)
    assert cache.start_page(start_scope(PATH)) is None
    assert cache.start_page(start_scope("/v1/stream/other")) is not None

    small = ChunkCache(3000)
    for name in ("a", "b", "c", "d"):
        small.put_start(_page(owner=f"/v1/stream/{name}"))
    assert small.memory_bytes <= 3000
    assert small.start_page(start_scope("/v1/stream/a")) is None  # the least recently used went
    assert small.start_page(start_scope("/v1/stream/d")) is not None
