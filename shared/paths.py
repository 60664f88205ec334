"""Stream paths: what a stream name may be, checked once at the edge of the system.

Storage never derives a file name from a path (stream directories are named by generation),
so a path cannot escape the data directory whatever it contains; these rules exist to keep
names printable, bounded and unambiguous in URLs and logs.
"""

from __future__ import annotations

from typing import Final

from plugin_streams.shared.errors import BadRequest

STREAM_PREFIX: Final = "/v1/stream/"
MAX_PATH_BYTES: Final = 1024
_FORBIDDEN_SEGMENTS: Final = frozenset({"", ".", ".."})


def validate_path(path: str) -> str:
    """Return `path` (relative to the stream prefix) if it is a valid stream name."""
    if not path:
        raise BadRequest("empty stream path")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadRequest(f"stream path longer than {MAX_PATH_BYTES} bytes")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in path):
        raise BadRequest("stream path contains control characters")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in path):
        raise BadRequest("stream path is not valid UTF-8")
    for segment in path.split("/"):
        if segment in _FORBIDDEN_SEGMENTS:
            raise BadRequest("stream path has an empty, '.' or '..' segment")
    return path


def path_from_url_path(url_path: str) -> str:
    """Turn a `Stream-Forked-From` value (a URL path on this server) into a stream name."""
    if url_path.startswith(STREAM_PREFIX):
        return validate_path(url_path[len(STREAM_PREFIX) :])
    # Accept a bare stream name as well: the header is "the path of the source stream".
    return validate_path(url_path[1:] if url_path.startswith("/") else url_path)


def url_path(path: str) -> str:
    return STREAM_PREFIX + path
