"""Local TCP ports: one where nothing listens (connecting is refused at once), free ones for servers."""

from __future__ import annotations

import socket


def closed_port() -> int:
    """A port the kernel just handed out and that was closed again (nothing listens on it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports for servers a test starts (all held at once, so none repeats).

    Like closed_port(), a port is free when handed out; a server binding it moments later rarely loses it.
    """
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()
