"""Offsets (PROTOCOL.md §8, notes §1.3 and §1.5): format, round trip, order, sentinels, rejects."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.headers import OFFSET_NOW, OFFSET_START
from plugin_streams.shared.offsets import (
    MAX_FIELD,
    NOW,
    START,
    ZERO,
    Offset,
    Sentinel,
    parse_offset,
    parse_read_offset,
)

SAMPLES = [
    Offset(1, 0),
    Offset(1, 1),
    Offset(1, 9),
    Offset(1, 10),
    Offset(2, 0),
    Offset(12, 34_567),
    Offset(10**15, 10**15 + 1),
    Offset(MAX_FIELD, MAX_FIELD),
]

# Notes §1.5: the suite's fuzzed offsets plus the degenerate ones it names, and near misses.
MALFORMED = [
    "",
    " ",
    "/",
    "\n",
    "\r\n",
    "\x00",
    "../x",
    "/..",
    "a,b",
    "0,1",
    "0 1",
    "abc",
    "-2",
    "-01",
    "NOW",
    "Now",
    " -1",
    "now ",
    "0_0",
    "1_1",
    "0000000000000001",
    "0000000000000001_",
    "_0000000000000001",
    "0000000000000001-0000000000000002",
    "0000000000000001__0000000000000002",
    "000000000000001_0000000000000002",  # 15 digits
    "00000000000000001_0000000000000002",  # 17 digits
    "0000000000000001_00000000000000002",
    " 0000000000000001_0000000000000002",
    "0000000000000001_0000000000000002 ",
    "0000000000000001_0000000000000002\n",
    "0000000000000001_0000000000000002\r\n",
    "+000000000000001_0000000000000002",
    "-000000000000001_0000000000000002",
    "000000000000000a_0000000000000002",
    "0000000000000001_0000000000000002,0000000000000001_0000000000000003",
    "0000000000000001_0000000000000002/x",
    "../0000000000000001_0000000000000002",
    "0000000000000001_000000000000000\x00",
]


def test_format_is_two_zero_padded_16_digit_fields() -> None:
    assert str(Offset(1, 2)) == "0000000000000001_0000000000000002"
    assert str(ZERO) == "0000000000000000_0000000000000000"
    assert str(Offset(MAX_FIELD, MAX_FIELD)) == "9999999999999999_9999999999999999"
    assert all(len(str(offset)) == 33 for offset in SAMPLES)


@pytest.mark.parametrize("offset", SAMPLES, ids=str)
def test_round_trip(offset: Offset) -> None:
    assert parse_offset(str(offset)) == offset
    assert str(parse_offset(str(offset))) == str(offset)
    assert parse_read_offset(str(offset)) == offset


def test_the_literals_the_suite_hard_codes_parse() -> None:
    assert parse_offset("0000000000000000_0000000000000000") == ZERO
    assert parse_offset("9999999999999999_9999999999999999") == Offset(MAX_FIELD, MAX_FIELD)


def test_zero_offset() -> None:
    assert ZERO.is_zero
    assert Offset(0, 0).is_zero
    assert not Offset(0, 1).is_zero
    assert not Offset(1, 0).is_zero


def test_order_equals_string_order() -> None:
    rng = random.Random(8)
    offsets = list(SAMPLES) + [Offset(rng.randrange(MAX_FIELD + 1), rng.randrange(MAX_FIELD + 1)) for _ in range(500)]
    offsets += [Offset(rng.randrange(3), rng.randrange(1000)) for _ in range(500)]  # many near-ties
    by_value = sorted(offsets)
    by_text = sorted(offsets, key=str)
    assert by_value == by_text
    for a, b in itertools.pairwise(by_value):
        assert (a < b) == (str(a) < str(b))
        assert (a == b) == (str(a) == str(b))


def test_generation_dominates_position() -> None:
    assert Offset(1, MAX_FIELD) < Offset(2, 0)
    assert str(Offset(1, MAX_FIELD)) < str(Offset(2, 0))


def test_offsets_are_frozen_values() -> None:
    offset = Offset(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        offset.position = 3  # type: ignore[misc]
    assert offset == Offset(1, 2)
    assert hash(offset) == hash(Offset(1, 2))


def test_sentinels() -> None:
    assert parse_read_offset("-1") is START
    assert parse_read_offset("now") is NOW
    assert START.token == OFFSET_START == "-1"
    assert NOW.token == OFFSET_NOW == "now"
    assert isinstance(START, Sentinel)
    assert repr(NOW) == "Sentinel('now')"


@pytest.mark.parametrize("text", ["-1", "now"])
def test_concrete_parser_rejects_sentinels(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_offset(text)


@pytest.mark.parametrize("text", MALFORMED, ids=repr)
def test_malformed_offsets_are_bad_requests(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_read_offset(text)
    assert info.value.status == 400
    with pytest.raises(BadRequest):
        parse_offset(text)


@pytest.mark.parametrize(
    "text",
    [
        "\uff10" * 16 + "_" + "0" * 16,  # FULLWIDTH DIGIT ZERO
        "\u0660" * 16 + "_" + "0" * 16,  # ARABIC-INDIC DIGIT ZERO
        "0" * 15 + "\u0662_" + "0" * 16,  # ARABIC-INDIC DIGIT TWO in the last place
    ],
    ids=["fullwidth", "arabic-indic", "one-arabic-indic-digit"],
)
def test_non_ascii_digits_are_rejected(text: str) -> None:
    # A second spelling of an existing offset breaks "one offset, one string" (§8 Unique) and
    # lets two cache keys name the same position. `\d` in a str pattern matches any Unicode digit.
    with pytest.raises(BadRequest):
        parse_offset(text)


def test_error_message_is_bounded() -> None:
    with pytest.raises(BadRequest) as info:
        parse_offset("x" * 10_000)
    assert len(info.value.reason) < 200
