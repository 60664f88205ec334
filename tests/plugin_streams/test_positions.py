"""Client positions between the messages of a protocol JSON response (plugin_streams._positions)."""

from __future__ import annotations

import pytest

from plugin_streams import BadRequest, Message
from plugin_streams._positions import json_messages, split


def test_every_message_but_the_last_is_counted_from_where_the_response_was_read() -> None:
    assert json_messages("0_5", 0, ["a", "b", "c"], "0_9") == [
        Message("0_5,1", "a"),
        Message("0_5,2", "b"),
        Message("0_9", "c"),
    ]


def test_positions_counted_from_the_start_do_not_begin_with_a_dash() -> None:
    assert [m.offset for m in json_messages("-1", 0, [1, 2, 3], "0_3")] == [",1", ",2", "0_3"]


def test_a_skip_drops_what_was_delivered_and_keeps_the_counting() -> None:
    assert json_messages("0_5", 2, ["a", "b", "c", "d"], "0_9") == [Message("0_5,3", "c"), Message("0_9", "d")]
    assert json_messages("0_5", 0, [], "0_5") == []


def test_split_turns_any_offset_or_position_back_into_a_request() -> None:
    assert split(None) == ("-1", 0)
    assert split("0000_0012") == ("0000_0012", 0)
    assert split("now") == ("now", 0)
    assert split(",3") == ("-1", 3)  # counted from the start of the stream
    assert split("-1,3") == ("-1", 3)
    values = [10, 11, 12, 13]
    # Re-reading from any position but the last (a server offset) gives exactly what followed it.
    for index, message in enumerate(json_messages("7_7", 0, values, "7_9")[:-1]):
        offset, skip = split(message.offset)
        assert offset == "7_7"
        assert [m.data for m in json_messages(offset, skip, values, "7_9")] == values[index + 1 :]


@pytest.mark.parametrize("bad", ["0_5,", "0_5,0", "0_5,x", ",", "0_5,-1"])
def test_split_rejects_what_this_client_never_gives_out(bad: str) -> None:
    with pytest.raises(BadRequest):
        split(bad)
