"""plugin-streams: the Python client of the plugin-streams REST API and of the Durable Streams
protocol of any server (async and sync).

    from plugin_streams import Streams          # asyncio
    from plugin_streams import SyncStreams      # blocking, on a private event-loop thread

    Streams("http://127.0.0.1:4437")                    # this project's REST API
    Streams("http://127.0.0.1:4437/v1/stream")          # the protocol, streams under /v1/stream
    Streams("https://example.com/streams", api="protocol")

See `Streams` for the shape of the API and `plugin_streams.errors` for the exception tree.
"""

from plugin_streams._kv_atomic import AtomicOperation
from plugin_streams._kv_http import Fenced
from plugin_streams._kv_models import CommitResult, DeadLetter, GroupStats, KvChange, KvEntry, QueueMessage
from plugin_streams._kv_wire import KvU64
from plugin_streams.client import Streams
from plugin_streams.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    NotSupported,
    PayloadTooLarge,
    StreamClosed,
    StreamsError,
    Unauthorized,
    Unavailable,
)
from plugin_streams.kv import Kv
from plugin_streams.models import Message, Retention, StreamInfo
from plugin_streams.queue import Queue
from plugin_streams.queue_listener import QueueListener, Term
from plugin_streams.stream import Stream
from plugin_streams.sync import SyncStream, SyncStreams, SyncTailHandle
from plugin_streams.tail import TailHandle

__all__ = [
    "AtomicOperation",
    "BadRequest",
    "CommitResult",
    "Conflict",
    "DeadLetter",
    "Fenced",
    "Forbidden",
    "Gone",
    "GroupStats",
    "Kv",
    "KvChange",
    "KvEntry",
    "KvU64",
    "Message",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "Queue",
    "QueueListener",
    "QueueMessage",
    "Retention",
    "Stream",
    "StreamClosed",
    "StreamInfo",
    "Streams",
    "StreamsError",
    "SyncStream",
    "SyncStreams",
    "SyncTailHandle",
    "TailHandle",
    "Term",
    "Unauthorized",
    "Unavailable",
]
