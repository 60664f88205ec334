"""Message boundaries inside one stream's JSON records, for reads that start inside a record.

A read may start at any message boundary of a JSON stream, and the offset alone does not say
whether it is one. A small record is scanned where it is read (cost bounded by INLINE_BYTES); a
big one gets sparse marks (shared.jsonmarks), built once off the event loop on the first read
inside it and kept by record start position, so a later read costs a bisect and a short scan.
Built lazily, the marks need nothing from the log: recovery rebuilds them by being read.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Final

from plugin_streams.shared import jsonmode
from plugin_streams.shared.aio.single_flight import SingleFlight
from plugin_streams.shared.jsonmarks import MessageMarks

#: Records up to this size are scanned on the loop (well under a millisecond of structure).
INLINE_BYTES: Final = jsonmode.INLINE_BYTES  # records up to this are scanned where read


class RecordBoundaries:
    def __init__(self) -> None:
        self._marks: dict[int, MessageMarks] = {}  # by record start position
        # Concurrent first reads inside one record share its scan.
        self._scans: SingleFlight[int, MessageMarks] = SingleFlight("message-marks")
        self._kept_from = 0  # records before this were dropped (retention): their marks are not kept

    async def is_end(self, record_start: int, record: bytes | memoryview, skip: int) -> bool:
        """Whether `skip` bytes into the record at `record_start` is a message boundary."""
        if len(record) <= INLINE_BYTES:
            return jsonmode.is_message_end(record, skip)
        marks = self._marks.get(record_start)
        if marks is None:
            # The first reader copies the record for the scan (now, while its view is surely
            # valid); readers joining the scan in progress copy nothing. A failed scan reaches
            # every reader sharing it, and the next read tries again.
            copy = b"" if self._scans.waiting(record_start) else bytes(record)
            marks = await self._scans.run(record_start, partial(self._scan, record_start, copy))
        return marks.is_end(record, skip)

    def forget_before(self, position: int) -> None:
        """Records before `position` were dropped (retention): their marks go too."""
        self._kept_from = max(self._kept_from, position)
        for start in [s for s in self._marks if s < position]:
            del self._marks[start]

    async def _scan(self, record_start: int, record: bytes) -> MessageMarks:
        scan = asyncio.get_running_loop().run_in_executor(None, MessageMarks.build, record)
        # Kept when done, even if every reader left meanwhile (the work is done by then); kept
        # before the flight ends, so no read in between scans again.
        scan.add_done_callback(partial(self._keep, record_start))
        return await asyncio.shield(scan)

    def _keep(self, record_start: int, scan: asyncio.Future[MessageMarks]) -> None:
        if not scan.cancelled() and scan.exception() is None and record_start >= self._kept_from:
            self._marks[record_start] = scan.result()
