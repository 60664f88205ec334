"""JSON mode (PROTOCOL.md §9.1): validation, one-level flattening, stored form and read framing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin_streams.shared import jsonmode
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.jsonmode import (
    EMPTY_ARRAY,
    encode_messages,
    first_messages,
    frame,
    parse_messages,
    stored_batch,
)


def append(body: bytes) -> list[bytes]:
    return parse_messages(body, allow_empty_array=False)


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        # §9.1.2, verbatim
        (b'{"event": "created"}', [b'{"event":"created"}']),
        (b'[{"event": "a"}, {"event": "b"}]', [b'{"event":"a"}', b'{"event":"b"}']),
        (b"[[1,2], [3,4]]", [b"[1,2]", b"[3,4]"]),
        (b"[[[1,2,3]]]", [b"[[1,2,3]]"]),
        # the client-side wrapping of §9.1.2's note
        (b'[{"x": 1}]', [b'{"x":1}']),
        (b"[[]]", [b"[]"]),
        (b"[{}]", [b"{}"]),
    ],
)
def test_exactly_one_level_of_flattening(body: bytes, messages: list[bytes]) -> None:
    assert append(body) == messages


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1", b"1"),
        (b"-0.5", b"-0.5"),
        (b'"text"', b'"text"'),
        (b"null", b"null"),
        (b"true", b"true"),
        (b"false", b"false"),
        (b"{}", b"{}"),
        (b"123456789012345678901234567890", b"123456789012345678901234567890"),
        (b'  { "a" : [ 1 , 2 ] }\n', b'{"a":[1,2]}'),
        (b'{"z":1,"a":2}', b'{"z":1,"a":2}'),  # key order kept
    ],
)
def test_single_values_become_one_compact_message(body: bytes, message: bytes) -> None:
    assert append(body) == [message]


def test_empty_array_rejected_on_append_allowed_on_create() -> None:
    with pytest.raises(BadRequest) as info:
        append(b"[]")
    assert info.value.status == 400
    with pytest.raises(BadRequest):
        append(b" [ ] ")
    assert parse_messages(b"[]", allow_empty_array=True) == []


@pytest.mark.parametrize(
    "body",
    [b"NaN", b"Infinity", b"-Infinity", b"[1, NaN]", b'{"a": Infinity}', b"[[-Infinity]]"],
)
def test_non_finite_constants_are_rejected(body: bytes) -> None:
    with pytest.raises(BadRequest):
        append(body)
    with pytest.raises(BadRequest):
        parse_messages(body, allow_empty_array=True)


@pytest.mark.parametrize("body", [b"1e400", b"[1e400]", b'{"a": -1e999}'])
def test_numbers_overflowing_to_infinity_are_bad_requests(body: bytes) -> None:
    # json.loads turns 1e400 into float("inf") without calling parse_constant; the re-dump with
    # allow_nan=False then raises a bare ValueError (a 500 through the server).
    with pytest.raises(BadRequest):
        append(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b" ",
        b"{",
        b"[1,]",
        b"[1 2]",
        b"1 2",
        b"{'a': 1}",
        b'{"a"}',
        b"undefined",
        b"nan",
        b"01",
        b'"unterminated',
        b"\xff",
        b'"\xc3"',
        b"[" * 100_000,  # recursion depth
    ],
    ids=lambda body: repr(body[:20]),
)
def test_invalid_json_is_rejected(body: bytes) -> None:
    with pytest.raises(BadRequest):
        append(body)


@pytest.mark.parametrize(
    "body",
    [
        '["\u00e9"]'.encode("utf-16"),
        '"x"'.encode("utf-16-le"),
        '"x"'.encode("utf-32-le"),
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8 bytes: not valid UTF-8
    ],
    ids=["utf-16-bom", "utf-16-le", "utf-32-le", "encoded-surrogate"],
)
def test_body_must_be_utf8(body: bytes) -> None:
    # RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8. json.loads(bytes) guesses
    # UTF-16/32 from the first bytes and decodes with "surrogatepass", so it accepts all of these.
    with pytest.raises(BadRequest):
        append(body)


def test_utf8_bom_may_be_ignored() -> None:
    assert append(b"\xef\xbb\xbf[1]") == [b"1"]  # RFC 8259 §8.1: parsers MAY ignore a BOM


def test_unicode_is_stored_as_utf8() -> None:
    assert append('"caf\u00e9 \U0001f680"'.encode()) == ['"caf\u00e9 \U0001f680"'.encode()]
    assert append(b'"caf\\u00e9"') == ['"caf\u00e9"'.encode()]
    assert append(b'"\\ud83d\\ude80"') == ['"\U0001f680"'.encode()]  # an escaped surrogate pair


@pytest.mark.parametrize("escaped", [b'"\\ud800"', b'"x\\udfffy"', b'["\\udc00", "ok"]'])
def test_lone_surrogate_escapes_survive_escaped(escaped: bytes) -> None:
    messages = append(escaped)
    for message in messages:
        message.decode("utf-8")  # storable and servable as UTF-8
    assert [json.loads(m) for m in messages] == _flatten(json.loads(escaped))
    assert json.loads(frame(encode_messages(messages))) == _flatten(json.loads(escaped))


def _flatten(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def test_big_integers_and_floats_keep_their_values() -> None:
    messages = append(b"[9007199254740993, 0.1, 1e-7, 1.5e300, -0.0]")
    assert [json.loads(m) for m in messages] == [9007199254740993, 0.1, 1e-7, 1.5e300, -0.0]


def test_stored_form_is_comma_terminated() -> None:
    assert encode_messages([]) == b""
    assert encode_messages([b"1"]) == b"1,"
    assert encode_messages([b'{"a":1}', b"[2]"]) == b'{"a":1},[2],'


def test_frame_of_nothing_is_an_empty_array() -> None:
    assert frame(b"") == EMPTY_ARRAY == b"[]"


BATCHES = [b'{"event": "created"}', b"[1, [2, 3], null]", b'"\\u00e9\\ud800"', b"[[[1,2,3]]]", b'[{"k":"v"},"w"]']


def test_frame_encode_split_round_trip() -> None:
    stored = b""
    boundaries = [0]
    values: list[list[object]] = []
    for body in BATCHES:
        messages = append(body)
        for count in range(len(messages) + 1):
            assert first_messages(encode_messages(messages), count) == encode_messages(messages[:count])
        assert first_messages(encode_messages(messages), len(messages) + 1) is None
        stored += encode_messages(messages)
        boundaries.append(len(stored))
        values.append(_flatten(json.loads(body)))
    # Any read of whole batches is one JSON array of their messages, in order.
    for i in range(len(BATCHES) + 1):
        for j in range(i, len(BATCHES) + 1):
            framed = json.loads(frame(stored[boundaries[i] : boundaries[j]]))
            assert framed == [value for batch in values[i:j] for value in batch]
    everything = [m for body in BATCHES for m in append(body)]
    assert first_messages(stored, len(everything)) == encode_messages(everything) == stored
    assert first_messages(b"", 0) == b"" and first_messages(b"", 1) is None


def test_messages_are_already_canonical() -> None:
    # Re-parsing a stored message (wrapped, so arrays are not flattened) gives the same bytes.
    for body in BATCHES:
        for message in append(body):
            assert append(b"[" + message + b"]") == [message]


@pytest.mark.parametrize(
    "messages",
    [
        [b"1"],
        [b'{"a":"x,]}\\""}', b"[1,[2,3]]", b'"s"', b"5"],
        [b'"\\\\"', b'"a\\"b,c"', b"{}", b"[]", b"null"],
    ],
)
def test_message_ends_finds_every_boundary_and_nothing_else(messages: list[bytes]) -> None:
    stored = jsonmode.encode_messages(messages)
    expected, total = [], 0
    for message in messages:
        total += len(message) + 1
        expected.append(total)
    assert jsonmode.message_ends(stored) == expected
    assert jsonmode.unframe(jsonmode.frame(stored)) == stored


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "[ ]",
        "[1]",
        " [ 1 , 2 ] \n",
        "\ufeff[1]",
        '[[1,[2]],{"a":"b"}, "x\\u0000", -0.0, 1.5e3, true, null]',
        '["\\ud800"]',
        '{"a":[1,2]}',
        '"s"',
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1]x",
        "[1]]",
        "[",
        "]",
        "",
        "[NaN]",
        "[Infinity]",
        "[1e400]",
        "[01]",
        "[1.]",
        "[tru]",
        '[{"a":1}{"b":2}]',
    ],
)
@pytest.mark.parametrize("allow_empty_array", [True, False])
def test_a_large_batch_built_one_message_at_a_time_is_stored_the_same(body: str, allow_empty_array: bool) -> None:
    def stored(parse: Callable[[], bytes]) -> bytes | str:
        try:
            return parse()
        except BadRequest:
            return "400"

    whole = stored(lambda: encode_messages(parse_messages(body.encode(), allow_empty_array=allow_empty_array)))
    assert stored(lambda: stored_batch(body.encode(), allow_empty_array=allow_empty_array)) == whole


_BODIES_OF_ALL_KINDS = [
    "[]",
    " [ ] ",
    "[1, 2, 3]",
    '[[1,[2]],{"a":"b"}, "x\\u0000", -0.0, 1.5e3, 1e16, 1e-7, true, null]',
    '["\\ud800", "é"]',
    '["é", {"k": "\\udfff"}]',
    '{"a":[1,2]}',
    '"s"',
    "123456789012345678901234567890",
    "[1,]",
    "[1e400]",
    "[NaN]",
    "\ufeff[1]",
    "\ufeff\ufeff[1]",
    "[" + "[" * 5000 + "]" * 5000 + "]",
    "",
]


@pytest.mark.parametrize("body", _BODIES_OF_ALL_KINDS)
@pytest.mark.parametrize("allow_empty_array", [True, False])
def test_stored_messages_is_the_stored_form_of_the_parsed_messages(body: str, allow_empty_array: bool) -> None:
    def stored(parse: Callable[[], bytes]) -> bytes | str:
        try:
            return parse()
        except BadRequest as exc:
            return f"400 {exc.reason}"

    raw = body.encode("utf-8", "surrogatepass")
    whole = stored(lambda: encode_messages(parse_messages(raw, allow_empty_array=allow_empty_array)))
    assert stored(lambda: jsonmode.stored_messages(raw, allow_empty_array=allow_empty_array)) == whole


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
    max_leaves=20,
)


@given(_VALUES)
def test_stored_messages_agrees_with_one_message_at_a_time_for_any_value(value: object) -> None:
    body = json.dumps(value).encode("utf-8", "surrogatepass")
    expected = encode_messages(parse_messages(body, allow_empty_array=True))
    assert jsonmode.stored_messages(body, allow_empty_array=True) == expected
