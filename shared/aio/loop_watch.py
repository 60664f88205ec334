"""Test mode: a blocking call on the event loop fails loudly (blockbuster), in tests and in real servers.

With `PLUGIN_STREAMS_BLOCKBUSTER=1` in its environment a server process (shared.aio.serve)
patches the blocking calls blockbuster knows (file and socket I/O, sleeps, contended locks,
os.stat and friends): made on the event loop with product code on the stack, each one logs an
ERROR line starting with `BLOCKING_MARK` (with the stack) and raises BlockingError, so the
request fails too. tests/support/processes.py sets the variable and fails a test whose server
logged the mark; tests/conftest.py applies the same watch to in-process tests.

blockbuster is a test dependency, imported only when asked for: production never loads it.
The few blocking calls the design accepts on the loop are allowed below, each with its reason.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from blockbuster import BlockBuster

ENV: Final = "PLUGIN_STREAMS_BLOCKBUSTER"
BLOCKING_MARK: Final = "BLOCKING CALL ON THE EVENT LOOP"
#: The product's import roots: a blocking call counts when one of them is on the stack.
PRODUCT_MODULES: Final = (
    "plugin_streams",
    "plugin_streams.origin",
    "plugin_streams.edge",
    "plugin_streams.shared",
)

#: Blocking calls the design accepts on the loop: (blockbuster's name for the call, the file and
#: function it is made in, why it is fine). Each is bounded and happens once, not per request.
ALLOWED: Final = (
    (
        "io.BufferedReader.read",
        "origin/page.py",
        "add_page_routes",
        "the live page (a few KiB) is read once while the app is built, before serve() starts the loop",
    ),
    (
        "os.path.abspath",
        "origin/storage/file/engine.py",
        "__init__",
        "a FileStore resolves its directory once when it is made (one getcwd), at app build",
    ),
)

#: Functions in which every blocking call is accepted: (file, function, why).
ALLOWED_FUNCTIONS: Final = (
    (
        "asyncpg/connect_utils.py",
        "_parse_connect_dsn_and_args",
        "asyncpg resolves ~/.pgpass and ~/.postgresql/ (a few stats) when the postgres engine's pool opens a "
        "connection: all of them at start-up, later only to replace one lost with the database, never per request",
    ),
)

_log = logging.getLogger(__name__)


def requested() -> bool:
    return os.environ.get(ENV) == "1"


def loop_watch() -> BlockBuster:
    """A BlockBuster over the product's modules, not yet active; its errors log BLOCKING_MARK."""
    import blockbuster
    import blockbuster.blockbuster as implementation

    class LoudBlockingError(blockbuster.BlockingError):
        """Logged where it is raised: product code may catch it, the log line stays."""

        def __init__(self, func: str) -> None:
            super().__init__(func)
            stack = "".join(traceback.format_stack()[-14:-1])  # the innermost frames, this one left out
            _log.error("%s: %s\n%s", BLOCKING_MARK, func, stack)

    # The wrappers look the name up when they raise: every one of them raises the loud kind.
    implementation.BlockingError = LoudBlockingError  # type: ignore[misc]
    watch = blockbuster.BlockBuster(list(PRODUCT_MODULES))
    for call, filename, function, _why in ALLOWED:
        watch.functions[call].can_block_in(filename, function)
    for filename, function, _why in ALLOWED_FUNCTIONS:
        for patched in watch.functions.values():
            patched.can_block_in(filename, function)
    return watch


def activate_if_requested() -> None:
    """Start watching the event loop of this process when the environment asks for it (tests)."""
    if requested():
        loop_watch().activate()
        _log.warning("%s=1: blocking calls on the event loop fail (test mode)", ENV)
