"""Misbehaving clients on raw sockets: one that leaves right after asking, one that never reads.

aiohttp's client cannot do either on purpose; the servers must free what such clients hold.
"""

from __future__ import annotations

import asyncio
import socket


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def open_and_close(url: str, target: str, headers: str = "", linger: float = 0.5) -> None:
    """Send `GET target` (with raw `headers` lines), wait `linger` s for the server to take it, hang up."""
    host, port = _host_port(url)
    _reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
    await writer.drain()
    await asyncio.sleep(linger)
    writer.close()
    await writer.wait_closed()


def open_never_reading(url: str, target: str) -> socket.socket:
    """A blocking socket that sent `GET target` and will not read: its tiny window fills at once.

    Blocking: call it through asyncio.to_thread from a test's event loop.
    """
    host, port = _host_port(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    sock.connect((host, port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock
