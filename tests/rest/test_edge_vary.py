"""REST answers through the edge keep the headers a cache in front needs, `Vary: Accept` above all.

A REST read is JSON or raw bytes by `Accept`, and a page that will never change is `public,
immutable`: without `Vary: Accept`, a CDN in front of the edge keeps whichever representation it
saw first and hands it to every client for a year. Real origin and edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests.rest.helpers import append, create, stream_url
from tests.support.processes import EdgeProcess, OriginProcess

RAW = "application/octet-stream"


@pytest.fixture(scope="module")
def edge(rest_origin: OriginProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with EdgeProcess(rest_origin.url, tmp_path_factory.mktemp("edge")) as process:
        yield process


def vary(headers: CIMultiDictProxy[str]) -> set[str]:
    return {v.strip().lower() for value in headers.getall("Vary", ()) for v in value.split(",")}


async def test_an_immutable_page_keeps_vary_accept_through_the_edge(
    http: aiohttp.ClientSession, rest_origin: OriginProcess, edge: EdgeProcess, name: str
) -> None:
    origin_api, edge_api = rest_origin.url + "/streams/api/v1", edge.url + "/streams/api/v1"
    await create(http, origin_api, name)
    first = await append(http, origin_api, name, ["x" * 40] * 60)
    for _ in range(3):
        await append(http, origin_api, name, ["y" * 40] * 60)
    params = {"after": first["offsets"][0]}
    answers: dict[tuple[str, str], dict[str, object]] = {}
    for api in (origin_api, edge_api):
        for accept in ("application/json", RAW):
            async with http.get(stream_url(api, name, "read"), params=params, headers={"Accept": accept}) as r:
                answers[api, accept] = {
                    "status": r.status,
                    "cache-control": r.headers["Cache-Control"],
                    "etag": r.headers["ETag"],
                    "vary": vary(r.headers),
                    "body": await r.read(),
                }
    cache_control = str(answers[origin_api, RAW]["cache-control"])
    assert cache_control.startswith("public") and "immutable" in cache_control, cache_control
    assert answers[origin_api, RAW]["body"] != answers[origin_api, "application/json"]["body"]
    for accept in ("application/json", RAW):
        at_origin, at_edge = answers[origin_api, accept], answers[edge_api, accept]
        assert "accept" in at_origin["vary"]  # type: ignore[operator]
        assert at_edge == at_origin, f"Accept: {accept}: edge {at_edge['vary']} / origin {at_origin['vary']}"

    # A revalidation through the edge keeps it as well.
    etag = str(answers[edge_api, "application/json"]["etag"])  # (no Accept: JSON)
    async with http.get(stream_url(edge_api, name, "read"), params=params, headers={"If-None-Match": etag}) as r:
        assert r.status == 304
        assert "accept" in vary(r.headers), dict(r.headers)
