"""Request parsing: headers and query in, frozen requests out, BadRequest for anything malformed."""

from __future__ import annotations

import itertools

import pytest
from multidict import CIMultiDict

from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.offsets import NOW, START, Offset
from plugin_streams.shared.parse import (
    MAX_PRODUCER_ID_LENGTH,
    MAX_STREAM_SEQ_LENGTH,
    MAX_TTL_SECONDS,
    AppendRequest,
    CreateRequest,
    ForkSpec,
    ReadRequest,
    is_true,
    parse_append,
    parse_create,
    parse_expires_at,
    parse_read,
)
from plugin_streams.shared.producer import MAX_SAFE_INTEGER, ProducerTuple

OFFSET = "0000000000000003_0000000000000010"


def headers(**values: str) -> CIMultiDict[str]:
    """Header mapping as aiohttp gives it (case-insensitive); `Stream_TTL=` becomes `Stream-TTL`."""
    return CIMultiDict({name.replace("_", "-"): value for name, value in values.items()})


# -- is_true (PROTOCOL.md §4.1) ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "tRuE"])
def test_true_case_insensitively(value: str) -> None:
    assert is_true(value)


@pytest.mark.parametrize("value", [None, "", "false", "yes", "1", "on", "truee", "t", "true,true"])
def test_anything_else_is_absent(value: str | None) -> None:
    assert not is_true(value)


# -- parse_create ---------------------------------------------------------------------------


def test_create_defaults() -> None:
    assert parse_create(headers()) == CreateRequest(
        content_type=None, ttl_seconds=None, expires=None, closed=False, fork=None
    )


def test_create_content_type_is_kept_exactly() -> None:
    assert parse_create(headers(Content_Type="text/plain")).content_type == "text/plain"
    assert parse_create(headers(Content_Type="APPLICATION/JSON")).content_type == "APPLICATION/JSON"
    assert parse_create(headers(Content_Type="")).content_type is None


def test_create_invalid_content_type() -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Content_Type="not a media type"))


def test_header_names_are_case_insensitive() -> None:
    request = parse_create(CIMultiDict({"stream-ttl": "60", "content-type": "text/plain", "STREAM-CLOSED": "true"}))
    assert (request.ttl_seconds, request.content_type, request.closed) == (60, "text/plain", True)


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("1", 1), ("60", 60), ("3600", 3600)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_create(headers(Stream_TTL=text)).ttl_seconds == seconds


def test_ttl_upper_bound() -> None:
    assert parse_create(headers(Stream_TTL=str(MAX_TTL_SECONDS))).ttl_seconds == MAX_TTL_SECONDS
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_TTL=str(MAX_TTL_SECONDS + 1)))


@pytest.mark.parametrize(
    "text",
    ["abc", "-1", "00060", "+60", "60.5", "1e3", "", "0x10", "60s", "6 0", "00", "\uff16\uff10", "60\n", "3.6e3"],
    ids=repr,
)
def test_ttl_rejects_everything_but_plain_decimal(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_TTL=text))


def test_ttl_and_expires_at_are_mutually_exclusive() -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_TTL="60", Stream_Expires_At="2030-01-01T00:00:00Z"))


def test_expires_at_z_and_utc_offset_are_the_same_instant() -> None:
    z = parse_create(headers(Stream_Expires_At="2030-01-01T00:00:00Z")).expires
    utc = parse_create(headers(Stream_Expires_At="2030-01-01T00:00:00+00:00")).expires
    assert z is not None and utc is not None
    assert z.at_ms == utc.at_ms == 1_893_456_000_000
    # The text the client sent is kept, for the echo on HEAD.
    assert (z.text, utc.text) == ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    ("text", "at_ms"),
    [
        ("2030-01-01T02:00:00+02:00", 1_893_456_000_000),
        ("2029-12-31T19:00:00-05:00", 1_893_456_000_000),
        ("2030-01-01t00:00:00z", 1_893_456_000_000),
        ("2030-01-01 00:00:00Z", 1_893_456_000_000),
        ("2030-01-01T00:00:00.123Z", 1_893_456_000_123),
        ("2030-01-01T00:00:00.001Z", 1_893_456_000_001),
        ("2030-01-01T00:00:00.999999999Z", 1_893_456_000_999),
        ("2030-01-01T00:00:00.5+00:00", 1_893_456_000_500),
    ],
)
def test_expires_at_instants(text: str, at_ms: int) -> None:
    assert parse_expires_at(text).at_ms == at_ms


def test_expires_at_every_millisecond_is_exact() -> None:
    base = parse_expires_at("2030-01-01T00:00:00Z").at_ms
    for ms in range(1000):
        assert parse_expires_at(f"2030-01-01T00:00:00.{ms:03d}Z").at_ms == base + ms


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "",
        "2030-01-01",
        "2030-01-01T00:00:00",  # no zone
        "2030-01-01T00:00Z",
        "2030-13-01T00:00:00Z",
        "2030-02-30T00:00:00Z",
        "2030-01-01T25:00:00Z",
        "2030-01-01T00:00:00+0000",
        "2030-01-01T00:00:00.Z",
        "1893456000",
        "Tue, 01 Jan 2030 00:00:00 GMT",
    ],
)
def test_expires_at_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_Expires_At=text))


@pytest.mark.parametrize(("value", "closed"), [("true", True), ("TRUE", True), ("false", False), ("1", False)])
def test_create_closed(value: str, closed: bool) -> None:
    assert parse_create(headers(Stream_Closed=value)).closed is closed


def test_fork_minimal() -> None:
    request = parse_create(headers(Stream_Forked_From="/v1/stream/src/a"))
    assert request.fork == ForkSpec(source="src/a", offset=None, sub_offset=0)


def test_fork_with_offset_and_sub_offset() -> None:
    request = parse_create(
        headers(Stream_Forked_From="/v1/stream/src", Stream_Fork_Offset=OFFSET, Stream_Fork_Sub_Offset="7")
    )
    assert request.fork == ForkSpec(source="src", offset=Offset(3, 10), sub_offset=7)


def test_fork_offset_literals_the_suite_sends() -> None:
    zero = parse_create(headers(Stream_Forked_From="/v1/stream/s", Stream_Fork_Offset="0" * 16 + "_" + "0" * 16))
    assert zero.fork is not None and zero.fork.offset == Offset(0, 0)
    # Beyond the tail is the service's 400 (it knows the tail); it parses here.
    far = parse_create(headers(Stream_Forked_From="/v1/stream/s", Stream_Fork_Offset="9" * 16 + "_" + "9" * 16))
    assert far.fork is not None and far.fork.offset == Offset(10**16 - 1, 10**16 - 1)


def test_fork_sub_offset_zero_equals_absent() -> None:
    with_zero = parse_create(headers(Stream_Forked_From="/v1/stream/s", Stream_Fork_Sub_Offset="0"))
    without = parse_create(headers(Stream_Forked_From="/v1/stream/s"))
    assert with_zero == without


def test_fork_sub_offset_upper_bound() -> None:
    request = parse_create(headers(Stream_Forked_From="s", Stream_Fork_Sub_Offset=str(MAX_SAFE_INTEGER)))
    assert request.fork is not None and request.fork.sub_offset == MAX_SAFE_INTEGER
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_Forked_From="s", Stream_Fork_Sub_Offset=str(MAX_SAFE_INTEGER + 1)))


@pytest.mark.parametrize("text", ["-1", "01", "abc", "1.5", "1e3", "+1", "", "0x1"], ids=repr)
def test_fork_sub_offset_malformed(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_Forked_From="/v1/stream/s", Stream_Fork_Sub_Offset=text))


@pytest.mark.parametrize("text", ["", "abc", "-1", "now", "0_0", "../x", OFFSET + ",x"], ids=repr)
def test_fork_offset_malformed(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_Forked_From="/v1/stream/s", Stream_Fork_Offset=text))


@pytest.mark.parametrize(
    "fork_headers",
    [
        {"Stream-Fork-Offset": OFFSET},
        {"Stream-Fork-Sub-Offset": "0"},
        {"Stream-Fork-Sub-Offset": "3"},
        {"Stream-Fork-Offset": OFFSET, "Stream-Fork-Sub-Offset": "1"},
    ],
)
def test_fork_headers_without_forked_from(fork_headers: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_create(CIMultiDict(fork_headers))


@pytest.mark.parametrize("source", ["", "/v1/stream/", "/v1/stream/../etc", "/v1/stream/a//b"])
def test_fork_source_must_be_a_valid_path(source: str) -> None:
    with pytest.raises(BadRequest):
        parse_create(headers(Stream_Forked_From=source))


# -- parse_append ---------------------------------------------------------------------------

PRODUCER = {"Producer-Id": "p1", "Producer-Epoch": "0", "Producer-Seq": "0"}


def test_append_plain() -> None:
    assert parse_append(headers(Content_Type="text/plain"), body_empty=False) == AppendRequest(
        content_type="text/plain", closed=False, stream_seq=None, producer=None
    )


def test_append_with_everything() -> None:
    request = parse_append(
        CIMultiDict({"Content-Type": "application/json", "Stream-Closed": "TRUE", "Stream-Seq": "000042", **PRODUCER}),
        body_empty=False,
    )
    assert request == AppendRequest("application/json", True, "000042", ProducerTuple("p1", 0, 0))


def test_empty_body_without_close_is_rejected() -> None:
    with pytest.raises(BadRequest):
        parse_append(headers(Content_Type="text/plain"), body_empty=True)
    with pytest.raises(BadRequest):
        parse_append(headers(Content_Type="text/plain", Stream_Closed="false"), body_empty=True)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-other", "garbage!"])
def test_close_only_needs_no_content_type_and_ignores_any(content_type: str | None) -> None:
    values = (
        {"Stream-Closed": "true"} if content_type is None else {"Stream-Closed": "true", "Content-Type": content_type}
    )
    request = parse_append(CIMultiDict(values), body_empty=True)
    assert request == AppendRequest(content_type=None, closed=True, stream_seq=None, producer=None)


def test_close_only_with_producer() -> None:
    request = parse_append(CIMultiDict({"Stream-Closed": "true", **PRODUCER}), body_empty=True)
    assert request.closed and request.producer == ProducerTuple("p1", 0, 0)


@pytest.mark.parametrize("content_type", [None, "", "   "])
def test_body_without_content_type_is_rejected(content_type: str | None) -> None:
    values = {} if content_type is None else {"Content-Type": content_type}
    with pytest.raises(BadRequest):
        parse_append(CIMultiDict(values), body_empty=False)


def test_body_with_invalid_content_type_is_rejected() -> None:
    with pytest.raises(BadRequest):
        parse_append(headers(Content_Type="text"), body_empty=False)


def test_stream_seq_length() -> None:
    seq = "x" * MAX_STREAM_SEQ_LENGTH
    assert parse_append(headers(Content_Type="text/plain", Stream_Seq=seq), body_empty=False).stream_seq == seq
    for bad in ("", "x" * (MAX_STREAM_SEQ_LENGTH + 1)):
        with pytest.raises(BadRequest):
            parse_append(headers(Content_Type="text/plain", Stream_Seq=bad), body_empty=False)


@pytest.mark.parametrize(
    "present",
    [subset for size in (1, 2) for subset in itertools.combinations(PRODUCER, size)],
    ids=lambda names: "+".join(names),
)
def test_partial_producer_headers(present: tuple[str, ...]) -> None:
    values = {"Content-Type": "text/plain"} | {name: PRODUCER[name] for name in present}
    with pytest.raises(BadRequest):
        parse_append(CIMultiDict(values), body_empty=False)


def test_empty_producer_id_is_not_absent() -> None:
    with pytest.raises(BadRequest):
        parse_append(CIMultiDict({"Content-Type": "text/plain", **PRODUCER, "Producer-Id": ""}), body_empty=False)


def test_producer_id_length_and_unicode() -> None:
    for producer_id in ("x" * MAX_PRODUCER_ID_LENGTH, "\u751f\u4ea7\u8005-\U0001f680", " spaced id "):
        values = {"Content-Type": "text/plain", **PRODUCER, "Producer-Id": producer_id}
        request = parse_append(CIMultiDict(values), body_empty=False)
        assert request.producer == ProducerTuple(producer_id, 0, 0)
    with pytest.raises(BadRequest):
        values = {"Content-Type": "text/plain", **PRODUCER, "Producer-Id": "x" * (MAX_PRODUCER_ID_LENGTH + 1)}
        parse_append(CIMultiDict(values), body_empty=False)


@pytest.mark.parametrize(
    "value",
    ["1abc", "0xyz", "1e3", "-1", "", " ", "+1", "1.0", "0x1", "abc", str(2**53), str(2**64), "1" * 17, "\uff11"],
    ids=repr,
)
@pytest.mark.parametrize("field", ["Producer-Epoch", "Producer-Seq"])
def test_producer_numbers_malformed(field: str, value: str) -> None:
    with pytest.raises(BadRequest):
        parse_append(CIMultiDict({"Content-Type": "text/plain", **PRODUCER, field: value}), body_empty=False)


def test_producer_numbers_up_to_max_safe_integer() -> None:
    top = str(2**53 - 1)
    request = parse_append(
        CIMultiDict({"Content-Type": "text/plain", **PRODUCER, "Producer-Epoch": top, "Producer-Seq": top}),
        body_empty=False,
    )
    assert request.producer == ProducerTuple("p1", 2**53 - 1, 2**53 - 1)


# -- parse_read -----------------------------------------------------------------------------


def test_read_defaults_to_start() -> None:
    assert parse_read({}, []) == ReadRequest(offset=START, live=None, cursor=None)


@pytest.mark.parametrize(("text", "offset"), [("-1", START), ("now", NOW), (OFFSET, Offset(3, 10))])
def test_read_offset(text: str, offset: object) -> None:
    assert parse_read({"offset": text}, [text]).offset == offset


@pytest.mark.parametrize("offsets", [[OFFSET, OFFSET], ["-1", "now"], ["a", "b"], ["", ""]])
def test_duplicate_offset(offsets: list[str]) -> None:
    with pytest.raises(BadRequest):
        parse_read({"offset": offsets[0]}, offsets)


def test_empty_offset_parameter() -> None:
    with pytest.raises(BadRequest):
        parse_read({"offset": ""}, [""])


@pytest.mark.parametrize("live", ["long-poll", "sse"])
def test_live_requires_offset(live: str) -> None:
    with pytest.raises(BadRequest):
        parse_read({"live": live}, [])
    request = parse_read({"live": live, "offset": "now"}, ["now"])
    assert (request.live, request.offset) == (live, NOW)


@pytest.mark.parametrize("live", ["", "true", "longpoll", "long_poll", "SSE", "Long-Poll", "websocket"])
def test_unknown_live_mode(live: str) -> None:
    with pytest.raises(BadRequest):
        parse_read({"live": live, "offset": "-1"}, ["-1"])


@pytest.mark.parametrize(
    ("text", "cursor"),
    [("0", 0), ("1000", 1000), ("007", 7), ("9" * 18, 10**18 - 1)],
)
def test_numeric_cursor(text: str, cursor: int) -> None:
    assert parse_read({"offset": "-1", "cursor": text}, ["-1"]).cursor == cursor


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.5", "1e3", " 1", "9" * 19, "\uff11"], ids=repr)
def test_non_numeric_cursor_is_ignored(text: str) -> None:
    assert parse_read({"offset": "-1", "cursor": text}, ["-1"]).cursor is None


def test_unknown_query_parameters_are_ignored() -> None:
    assert parse_read({"offset": "-1", "foo": "bar"}, ["-1"]) == ReadRequest(START, None, None)
