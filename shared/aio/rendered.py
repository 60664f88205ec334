"""Responses rendered ahead as bytes, exactly as aiohttp would send them, for the fast lane.

aiohttp adds Content-Length (not on 204), a default Content-Type, Date and Server after the
handler's headers, and the app's on_response_prepare hook adds the security headers last. A
rendered response does the same once, keeping only the Date line to refresh (once a second).
Only what the fast lanes send is supported: answers to HTTP/1.1 keep-alive requests that are not
HEAD, with a final status other than 304 (204 without a body).

A `Template` is a rendered head with holes: header values that change from one response to the
next (an append's next offset) are filled in per response, the rest is rendered once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

from aiohttp import hdrs
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from plugin_streams.shared.aio.cors import add_security_headers

_DATE_MARK = "\0date\0"
#: A hole's value in the headers given to Template, by its position: HOLES[0], HOLES[1], ...
HOLES: Final = tuple(f"\0hole{i}\0" for i in range(8))
_DATE_SLOT: Final = "\0date\0"
_SLOT: Final = re.compile("\0(?:hole)?(\\d|date)\0")


def _render(status: int, headers: Mapping[str, str], body_length: int) -> str:
    """The head as aiohttp writes it, with the Date value left as `_DATE_MARK`."""
    if status < 200 or status == 304:
        raise ValueError(f"cannot render status {status} ahead")
    # The same steps, in the same order, as aiohttp's Response._start and _prepare_headers.
    out: CIMultiDict[str] = CIMultiDict(headers)
    if status == 204:
        out.popall(hdrs.CONTENT_LENGTH, None)
        out.popall(hdrs.TRANSFER_ENCODING, None)
    else:
        if hdrs.CONTENT_LENGTH not in out:
            out[hdrs.CONTENT_LENGTH] = str(body_length)
        if out[hdrs.CONTENT_LENGTH] != "0":
            out.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
    if hdrs.DATE in out:
        raise ValueError("a rendered response gets its own Date")
    out[hdrs.DATE] = _DATE_MARK
    out.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
    add_security_headers(out)  # the app's on_response_prepare hook
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"]
    for name, value in out.items():
        if "\r" in name + value or "\n" in name + value:
            raise ValueError("header names and values must not contain CR or LF")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines)


class Rendered:
    """Status line and headers of one response whose body has `body_length` bytes (sent apart).

    `head()` has the current Date. The body is not kept here, so a rendered head never holds
    on to bytes a cache has already let go of.
    """

    __slots__ = ("_after", "_before", "_date", "_head", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body_length: int = 0) -> None:
        self.status = status
        before, after = _render(status, headers, body_length).split(f"{hdrs.DATE}: {_DATE_MARK}\r\n")
        self._before = before.encode("utf-8")
        self._after = after.encode("utf-8")
        self._date = ""
        self._head = b""

    def head(self) -> bytes:
        date = rfc822_formatted_time()
        if date is not self._date:  # aiohttp keeps one string per second
            self._date = date
            self._head = b"%bDate: %b\r\n%b" % (self._before, date.encode(), self._after)
        return self._head


class Template:
    """The head of responses that differ only in some header values, rendered once.

    Give the changing values as `HOLES[0]`, `HOLES[1]`, ... in `headers`; `head(*values)` fills
    them in that order (and the current Date). The values must be free of CR and LF: the
    callers' are numbers and offsets.
    """

    __slots__ = ("_date", "_date_line", "_holes", "_parts", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body_length: int = 0) -> None:
        self.status = status
        text = _render(status, headers, body_length).replace(f"{hdrs.DATE}: {_DATE_MARK}\r\n", _DATE_SLOT)
        pieces = _SLOT.split(text)  # literal, slot, literal, slot, ..., literal
        #: What goes between consecutive literal parts: a hole's index, or -1 for the Date line.
        self._holes = [-1 if slot == "date" else int(slot) for slot in pieces[1::2]]
        self._parts = [literal.encode("utf-8") for literal in pieces[0::2]]
        if sorted(self._holes) != list(range(-1, len(self._holes) - 1)):
            raise ValueError("holes must be HOLES[0], HOLES[1], ... each once")
        self._date = ""
        self._date_line = b""

    def head(self, *values: str) -> bytes:
        date = rfc822_formatted_time()
        if date is not self._date:  # aiohttp keeps one string per second
            self._date = date
            self._date_line = b"Date: %b\r\n" % date.encode()
        parts = self._parts
        out = [parts[0]]
        for slot, hole in enumerate(self._holes):
            out.append(self._date_line if hole < 0 else values[hole].encode())
            out.append(parts[slot + 1])
        return b"".join(out)
