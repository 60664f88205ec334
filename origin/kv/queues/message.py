"""An enqueued message as the queue sees it, with Deno KV's limits and retry rules.

The KV layer turns an `enqueue` (a mutation of an atomic commit, or a plain enqueue) into a
`QueuedMessage`; the queue never looks inside `value` or the encoded `keys_if_undelivered`.
The id is the offset of the record that enqueued the message, so ids rise with the stream and
string order is stream order (offsets are fixed width). A commit that enqueues several messages
gives each a distinct id that still sorts after the previous one (its offset plus an index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from plugin_streams.origin.kv.queues.errors import QueueInputError

#: Deno's default retry intervals: five retries, so six attempts in all.
DEFAULT_BACKOFF_SCHEDULE_MS: Final = (100, 1_000, 5_000, 30_000, 60_000)
MAX_DELAY_MS: Final = 30 * 24 * 3_600_000
MAX_BACKOFF_INTERVALS: Final = 10
MAX_BACKOFF_INTERVAL_MS: Final = 3_600_000
MAX_KEYS_IF_UNDELIVERED: Final = 10
MAX_ID_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One message; `backoff_schedule_ms` None means Deno's default, () means a single attempt."""

    id: str
    value: bytes
    enqueued_at_ms: int
    delay_ms: int = 0
    backoff_schedule_ms: tuple[int, ...] | None = None
    keys_if_undelivered: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < len(self.id) <= MAX_ID_CHARS:
            raise QueueInputError(f"a message id must have 1 to {MAX_ID_CHARS} characters")
        if self.enqueued_at_ms < 0:
            raise QueueInputError("enqueued_at_ms must not be negative")
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise QueueInputError(f"delay must be between 0 and {MAX_DELAY_MS} ms (30 days)")
        _check_schedule(self.backoff_schedule_ms)
        if len(self.keys_if_undelivered) > MAX_KEYS_IF_UNDELIVERED:
            raise QueueInputError(f"at most {MAX_KEYS_IF_UNDELIVERED} keys_if_undelivered")
        if any(not key for key in self.keys_if_undelivered):
            raise QueueInputError("a key in keys_if_undelivered must not be empty")

    @property
    def due_ms(self) -> int:
        """When the first delivery may happen."""
        return self.enqueued_at_ms + self.delay_ms

    @property
    def schedule_ms(self) -> tuple[int, ...]:
        return DEFAULT_BACKOFF_SCHEDULE_MS if self.backoff_schedule_ms is None else self.backoff_schedule_ms

    @property
    def max_attempts(self) -> int:
        """Deno's meaning: the first delivery plus one retry per interval of the schedule."""
        return len(self.schedule_ms) + 1

    def retry_delay_ms(self, failed_attempt: int) -> int:
        """The wait before the retry that follows `failed_attempt` (1-based); only asked while retries remain."""
        return self.schedule_ms[failed_attempt - 1]


def _check_schedule(schedule: tuple[int, ...] | None) -> None:
    if schedule is None:
        return
    if len(schedule) > MAX_BACKOFF_INTERVALS:
        raise QueueInputError(f"a backoff schedule has at most {MAX_BACKOFF_INTERVALS} intervals")
    if any(not 0 <= interval <= MAX_BACKOFF_INTERVAL_MS for interval in schedule):
        raise QueueInputError(f"each backoff interval must be between 0 and {MAX_BACKOFF_INTERVAL_MS} ms (1 hour)")
