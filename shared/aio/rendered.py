"""Responses rendered ahead as bytes, exactly as aiohttp would send them, for the fast lane.

aiohttp adds Content-Length (not on 204), a default Content-Type, Date and Server after the
handler's headers, and the app's on_response_prepare hook adds the security headers last. A
rendered response does the same once, keeping only the Date line to refresh (once a second).
Only what the fast lane sends is supported: 200 with a body and 204, to HTTP/1.1 keep-alive GETs.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import hdrs
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from plugin_streams.shared.aio.cors import add_security_headers

_DATE_MARK = "\0date\0"


class Rendered:
    """Status line and headers of one response whose body has `body_length` bytes (sent apart).

    `head()` has the current Date. The body is not kept here, so a rendered head never holds
    on to bytes a cache has already let go of.
    """

    __slots__ = ("_after", "_before", "_date", "_head", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body_length: int = 0) -> None:
        if status not in (200, 204):
            raise ValueError(f"cannot render status {status} ahead")
        self.status = status
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
        before, after = "".join(lines).split(f"{hdrs.DATE}: {_DATE_MARK}\r\n")
        self._before = before.encode("utf-8")
        self._after = (after + "\r\n").encode("utf-8")
        self._date = ""
        self._head = b""

    def head(self) -> bytes:
        date = rfc822_formatted_time()
        if date is not self._date:  # aiohttp keeps one string per second
            self._date = date
            self._head = b"%bDate: %b\r\n%b" % (self._before, date.encode(), self._after)
        return self._head
