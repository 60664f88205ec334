"""Storage engines behind one interface (`Store`); see base.py for the contract."""

from origin.storage.base import (
    ForkLink,
    LoadedStream,
    Record,
    RecordsDropped,
    StorageError,
    StorageFailure,
    Store,
    StreamConfig,
    StreamMissing,
    Summary,
)
from origin.storage.file.engine import FileStore
from origin.storage.memory import MemoryStore

__all__ = [
    "FileStore",
    "ForkLink",
    "LoadedStream",
    "MemoryStore",
    "Record",
    "RecordsDropped",
    "StorageError",
    "StorageFailure",
    "Store",
    "StreamConfig",
    "StreamMissing",
    "Summary",
]
