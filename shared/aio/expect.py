"""`Expect:` handling that survives any header bytes.

aiohttp answers `Expect: 100-continue` (HTTP/1.1) with an interim 100 and refuses anything else
with 417, before the middlewares run, for matched and unmatched paths alike. Its handler quotes
the header in the 417's text, and a value that is not UTF-8 (aiohttp hands such bytes over as
lone surrogates) made building that response fail: a 500 and a traceback for one odd header.

aiohttp gives every route, including the ones it makes for 404 and 405, its module's default
expect handler unless a route names another; `install()` makes that default this one (checked:
if aiohttp no longer has it, nothing changes and the start-up log says so).
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web, web_urldispatcher
from aiohttp.http import HttpVersion11

logger = logging.getLogger(__name__)
_DEFAULT = "_default_expect_handler"


async def expect_continue(request: web.BaseRequest) -> None:
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11:
        return
    if expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the response's first byte
        return
    raise web.HTTPExpectationFailed(text=f"unknown Expect: {ascii(expect)[1:-1][:100]}")


def install() -> None:
    """Idempotent; before routes are added (each takes the default when it is made)."""
    if getattr(web_urldispatcher, _DEFAULT, None) is None:
        logger.warning("aiohttp has no %s: odd Expect headers keep aiohttp's own handling", _DEFAULT)
        return
    setattr(web_urldispatcher, _DEFAULT, expect_continue)
