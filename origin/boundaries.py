"""Message boundaries inside one stream's JSON records, for reads that start inside a record.

A read may start at any message boundary of a JSON stream, and the offset alone does not say
whether it is one. A small record is scanned where it is read (cost bounded by INLINE_BYTES); a
big one gets sparse marks (shared.jsonmarks), built once off the event loop on the first read
inside it and kept by record start position, so a later read costs a bisect and a short scan.
Built lazily, the marks need nothing from the log: recovery rebuilds them by being read.
"""

from __future__ import annotations

import asyncio
from typing import Final

from plugin_streams.shared import jsonmode
from plugin_streams.shared.jsonmarks import MessageMarks

#: Records up to this size are scanned on the loop (well under a millisecond of structure).
INLINE_BYTES: Final = jsonmode.INLINE_BYTES  # records up to this are scanned where read


class RecordBoundaries:
    def __init__(self) -> None:
        # By record start position; a future while a scan runs, so concurrent readers share it.
        self._marks: dict[int, asyncio.Future[MessageMarks]] = {}

    async def is_end(self, record_start: int, record: bytes | memoryview, skip: int) -> bool:
        """Whether `skip` bytes into the record at `record_start` is a message boundary."""
        if len(record) <= INLINE_BYTES:
            return jsonmode.is_message_end(record, skip)
        found = self._marks.get(record_start)
        if found is None:
            loop = asyncio.get_running_loop()
            found = asyncio.ensure_future(loop.run_in_executor(None, MessageMarks.build, bytes(record)))
            self._marks[record_start] = found
        try:
            marks = await asyncio.shield(found)
        except Exception:
            self._marks.pop(record_start, None)  # let the next read try again
            raise
        return marks.is_end(record, skip)

    def forget_before(self, position: int) -> None:
        """Records before `position` were dropped (retention): their marks go too."""
        for start in [s for s in self._marks if s < position]:
            del self._marks[start]
