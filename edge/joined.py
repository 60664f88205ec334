"""Consecutive long-poll answers joined into one answer from the first one's offset.

Answers from consecutive offsets (each starting where the one before ended) are together the
stream's data from the first offset to the last one's end, so joined they are the answer a
read from that offset would get, with the last answer's headers (next offset, up-to-date,
closure) and the ETag of the whole range.
"""

from __future__ import annotations

from collections.abc import Sequence

from multidict import CIMultiDict

from plugin_streams.edge.upstream import Reply
from plugin_streams.shared import caching, content_types, jsonmode
from plugin_streams.shared import headers as h


def join(start: str, answers: Sequence[Reply]) -> Reply:
    """One 200 answer from `start` made of consecutive 200 answers, the first of them from `start`."""
    last = answers[-1]
    if len(answers) == 1:
        return last
    if content_types.is_json(last.headers.get(h.CONTENT_TYPE, h.DEFAULT_CONTENT_TYPE)):
        body = jsonmode.frame(b"".join(jsonmode.unframe(answer.body) for answer in answers))
    else:
        body = b"".join(answer.body for answer in answers)
    headers = CIMultiDict(last.headers)
    if h.ETAG in headers:
        closed = headers.get(h.STREAM_CLOSED, "").lower() == "true"
        headers[h.ETAG] = caching.etag(start, headers[h.STREAM_NEXT_OFFSET], closed=closed)
    return Reply(200, headers, body)
