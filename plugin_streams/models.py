"""Values the client returns: messages, stream descriptions and retention settings (all frozen).

A message's `offset` is where the stream continues after it: save it, and a later
`read(after=offset)` or `tail(after=offset)` resumes right after that message.
Message data is the JSON value (JSON streams), a str (`text/*`) or bytes (anything else).

In protocol mode (see `plugin_streams.client`) a server gives one offset per response, not per
message. A JSON response's elements are its messages: the last one's offset is the server's
`Stream-Next-Offset`, each other one's is a position `"<offset read from>,<count>"` that this
client resumes from exactly (`plugin_streams._positions`); other servers do not know it. A text
or binary response (or SSE data event) has no message boundaries: it is one message, whose
offset is the server's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    offset: str
    data: Any


@dataclass(frozen=True, slots=True)
class Retention:
    """Drop a stream's oldest data once older than `max_age_seconds` or beyond `max_bytes`."""

    max_age_seconds: int | None = None
    max_bytes: int | None = None

    def to_json(self) -> dict[str, int | None]:
        return {"max_age_seconds": self.max_age_seconds, "max_bytes": self.max_bytes}


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    content_type: str
    next_offset: str
    closed: bool
    ttl_seconds: int | None
    expires_at: str | None
    retention: Retention | None
    max_size: int | None
    created_at: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamInfo:
        retention = data.get("retention")
        return cls(
            name=data["name"],
            content_type=data["content_type"],
            next_offset=data["next_offset"],
            closed=bool(data["closed"]),
            ttl_seconds=data.get("ttl_seconds"),
            expires_at=data.get("expires_at"),
            retention=Retention(retention.get("max_age_seconds"), retention.get("max_bytes")) if retention else None,
            max_size=data.get("max_size"),
            created_at=data.get("created_at", ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "content_type": self.content_type,
            "next_offset": self.next_offset,
            "closed": self.closed,
            "ttl_seconds": self.ttl_seconds,
            "expires_at": self.expires_at,
            "retention": self.retention.to_json() if self.retention else None,
            "max_size": self.max_size,
            "created_at": self.created_at,
        }


def decode_data(data: Any, encoding: str) -> Any:
    """Message data as it travels (JSON value, text, base64 text) to the Python value."""
    if encoding == "base64":
        return base64.b64decode(data)
    return data


def is_json_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"
