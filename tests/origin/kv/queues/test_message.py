"""QueuedMessage: Deno's limits (each refused with a 400 naming it) and retry rules."""

from __future__ import annotations

import pytest

from plugin_streams.origin.kv.queues import DEFAULT_BACKOFF_SCHEDULE_MS, QueuedMessage, QueueInputError


def test_max_attempts_is_one_plus_the_schedule_length() -> None:
    assert QueuedMessage("a", b"", 0).max_attempts == len(DEFAULT_BACKOFF_SCHEDULE_MS) + 1 == 6
    assert QueuedMessage("a", b"", 0, backoff_schedule_ms=(1, 2)).max_attempts == 3
    assert QueuedMessage("a", b"", 0, backoff_schedule_ms=()).max_attempts == 1


def test_retry_delay_follows_the_schedule_and_due_adds_the_delay() -> None:
    message = QueuedMessage("a", b"", 1_000, delay_ms=250, backoff_schedule_ms=(10, 20))
    assert (message.retry_delay_ms(1), message.retry_delay_ms(2), message.due_ms) == (10, 20, 1_250)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"delay_ms": 30 * 24 * 3_600_000 + 1}, "30 days"),
        ({"delay_ms": -1}, "delay"),
        ({"backoff_schedule_ms": tuple(range(11))}, "at most 10 intervals"),
        ({"backoff_schedule_ms": (3_600_001,)}, "1 hour"),
        ({"backoff_schedule_ms": (-1,)}, "backoff interval"),
        ({"keys_if_undelivered": tuple(b"k%d" % n for n in range(11))}, "at most 10 keys"),
        ({"keys_if_undelivered": (b"",)}, "must not be empty"),
        ({"enqueued_at_ms": -5}, "negative"),
        ({"id": ""}, "message id"),
        ({"id": "x" * 257}, "message id"),
    ],
)
def test_limits(options: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {"id": "a", "value": b"v", "enqueued_at_ms": 0} | options
    with pytest.raises(QueueInputError, match=match) as refused:
        QueuedMessage(**fields)  # type: ignore[arg-type]
    assert refused.value.status == 400
