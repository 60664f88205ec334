"""Storage engines behind one interface (`Store`); see base.py for the contract."""

from plugin_streams.origin.storage.base import (
    ForkLink,
    LoadedStream,
    PathTaken,
    Record,
    RecordsDropped,
    StorageError,
    StorageFailure,
    Store,
    StreamConfig,
    StreamMissing,
    Summary,
)
from plugin_streams.origin.storage.file.engine import FileStore
from plugin_streams.origin.storage.memory import MemoryStore

__all__ = [
    "FileStore",
    "ForkLink",
    "LoadedStream",
    "MemoryStore",
    "PathTaken",
    "Record",
    "RecordsDropped",
    "StorageError",
    "StorageFailure",
    "Store",
    "StreamConfig",
    "StreamMissing",
    "Summary",
]
