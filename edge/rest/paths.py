"""REST paths at the edge: which stream and action a path names, and the origin's URL for each."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote, urlencode

from multidict import CIMultiDict, CIMultiDictProxy

from plugin_streams.edge.upstream import end_to_end
from plugin_streams.shared import headers as h
from plugin_streams.shared.rest_routes import STREAMS_PATH, split_stream_path


def stream_name(path_safe: str) -> tuple[str | None, str | None]:
    """(stream name, action) named by a REST path, as the origin splits it; (None, None) if none."""
    split = split_stream_path(path_safe)
    if split is None:
        return None, None
    return unquote(split[0]), split[1]


def action_path(name: str, action: str, query: Mapping[str, str]) -> str:
    """The origin's path and query for `action` on stream `name` (its slashes escaped)."""
    return f"{STREAMS_PATH}/{quote(name, safe='')}/{action}?{urlencode(query)}"


def response_headers(upstream: CIMultiDict[str] | CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The origin's answer headers for the client: end-to-end ones, and `Vary`.

    (edge.upstream drops `Vary` with the headers this process sets itself; the edge adds no
    `Vary` of its own, so the origin's is the whole of it. REST reads differ by `Accept` and may
    be `immutable`: a CDN that never saw `Vary: Accept` would hand one representation to all.)
    """
    headers = end_to_end(upstream)
    if h.VARY not in headers:
        for value in upstream.getall(h.VARY, ()):
            headers.add(h.VARY, value)
    return headers
