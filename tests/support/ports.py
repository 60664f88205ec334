"""A local TCP port where nothing listens: connecting to it is refused at once."""

from __future__ import annotations

import socket


def closed_port() -> int:
    """A port the kernel just handed out and that was closed again (nothing listens on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
