"""Format 1 record framing (origin/storage/file/log_v1.py): pure bytes, encode → scan round trips."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from plugin_streams.origin.storage import Record
from plugin_streams.origin.storage.file import log_v1 as segment
from plugin_streams.origin.storage.file.log_v1 import PREFIX_SIZE, Scanned, encode, scan
from plugin_streams.origin.storage.file.record_meta import FLAG_CLOSED, FLAG_PRODUCER, FLAG_STREAM_SEQ
from plugin_streams.shared.producer import ProducerTuple

RECORDS = [
    Record(b"hello"),
    Record(b""),
    Record(b"", closed=True),
    Record(b"final", closed=True),
    Record(b"x", producer=ProducerTuple("p", 0, 0)),
    Record(b"y" * 300, producer=ProducerTuple("\u751f\u4ea7\u8005-\U0001f680", 2**53 - 1, 7)),
    Record(b"z", stream_seq="000123"),
    Record(b"", closed=True, producer=ProducerTuple("lone-\ud800", 1, 2), stream_seq="\u00e9"),
    Record(bytes(range(256)), producer=ProducerTuple("x" * 256, 3, 4), stream_seq="s" * 256),
]


def frame(record: Record) -> bytes:
    header, header_len = encode(record)
    assert len(header) == header_len
    return header + record.payload


def log_of(records: list[Record]) -> bytes:
    return b"".join(frame(r) for r in records)


def meta(record: Record) -> Record:
    return Record(b"", record.closed, record.producer, record.stream_seq)


def check_scan(data: bytes, records: list[Record], start: int = 0) -> list[Scanned]:
    found = list(scan(data, start))
    assert [f.record for f in found] == [meta(r) for r in records]
    assert [bytes(data[f.payload_start : f.payload_start + f.payload_len]) for f in found] == [
        r.payload for r in records
    ]
    return found


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_encode_then_scan_finds_the_record(record: Record) -> None:
    data = frame(record)
    (found,) = check_scan(data, [record])
    header_len = encode(record)[1]
    assert found == Scanned(
        end=len(data), payload_start=header_len, payload_len=len(record.payload), record=meta(record)
    )


def test_flags() -> None:
    assert encode(Record(b"x"))[0][PREFIX_SIZE] == 0
    assert encode(Record(b"x", closed=True))[0][PREFIX_SIZE] == FLAG_CLOSED
    assert encode(Record(b"x", producer=ProducerTuple("p", 0, 0)))[0][PREFIX_SIZE] == FLAG_PRODUCER
    assert encode(Record(b"x", stream_seq="1"))[0][PREFIX_SIZE] == FLAG_STREAM_SEQ
    every = Record(b"x", closed=True, producer=ProducerTuple("p", 0, 0), stream_seq="1")
    assert encode(every)[0][PREFIX_SIZE] == FLAG_CLOSED | FLAG_PRODUCER | FLAG_STREAM_SEQ


def test_header_layout() -> None:
    record = Record(b"payload", producer=ProducerTuple("id", 5, 6))
    header, header_len = encode(record)
    crc, body_len = struct.unpack_from("<II", header)
    assert body_len == header_len - PREFIX_SIZE + len(record.payload)
    assert crc == zlib.crc32(header[4:] + record.payload)
    assert struct.unpack_from("<QQH", header, PREFIX_SIZE + 1) == (5, 6, 2)


def test_scan_many_records_and_positions() -> None:
    data = log_of(RECORDS)
    found = check_scan(data, RECORDS)
    assert found[-1].end == len(data)
    ends = [0] + [f.end for f in found]
    for i, record in enumerate(RECORDS):
        assert ends[i + 1] - ends[i] == len(frame(record))


def test_scan_from_a_record_boundary() -> None:
    data = log_of(RECORDS)
    second = len(frame(RECORDS[0]))
    check_scan(data, RECORDS[1:], start=second)
    check_scan(memoryview(data), RECORDS[1:], start=second)
    assert list(scan(data, len(data))) == []


def test_scan_of_nothing() -> None:
    assert list(scan(b"")) == []
    assert list(scan(b"\x00" * (PREFIX_SIZE - 1))) == []


GOOD = [Record(b"first"), Record(b"second", producer=ProducerTuple("p", 1, 2), stream_seq="7")]
TARGET = Record(b"third!", closed=True, producer=ProducerTuple("q", 0, 9), stream_seq="8")


def test_scan_stops_at_any_flipped_byte() -> None:
    prefix = log_of(GOOD)
    target = frame(TARGET)
    after = frame(Record(b"never reached"))
    for i in range(len(target)):
        for mask in (0x01, 0x80, 0xFF):
            corrupt = bytearray(target)
            corrupt[i] ^= mask
            check_scan(prefix + bytes(corrupt) + after, GOOD)


def test_scan_stops_at_a_truncated_record() -> None:
    prefix = log_of(GOOD)
    target = frame(TARGET)
    for cut in range(len(target)):
        check_scan(prefix + target[:cut], GOOD)
    check_scan(prefix + target, [*GOOD, TARGET])


def test_scan_stops_at_garbage() -> None:
    prefix = log_of(GOOD)
    rng = random.Random(20)
    for size in (1, 7, 8, 9, 64, 4096):
        check_scan(prefix + rng.randbytes(size), GOOD)
    check_scan(prefix + b"\x00" * 64, GOOD)  # a preallocated, zero-filled tail
    check_scan(prefix + b"\xff" * 64, GOOD)


def test_body_len_zero_is_rejected_even_with_a_matching_checksum() -> None:
    empty = struct.pack("<II", zlib.crc32(struct.pack("<I", 0)), 0)
    check_scan(log_of(GOOD) + empty + frame(Record(b"after")), GOOD)


def _with_checksum(body: bytes) -> bytes:
    """A record whose checksum is right but whose body is whatever we say."""
    length = struct.pack("<I", len(body))
    return struct.pack("<I", zlib.crc32(length + body)) + length + body


@pytest.mark.parametrize(
    "body",
    [
        bytes([FLAG_PRODUCER]) + b"\x00" * 5,  # producer tuple cut short
        bytes([FLAG_PRODUCER]) + struct.pack("<QQH", 0, 0, 100) + b"id",  # id longer than the body
        bytes([FLAG_STREAM_SEQ]) + b"\x05",  # seq length cut short
        bytes([FLAG_STREAM_SEQ]) + struct.pack("<H", 50) + b"abc",  # seq longer than the body
        bytes([FLAG_PRODUCER]) + struct.pack("<QQH", 0, 0, 2) + b"\xff\xfe",  # id not UTF-8
    ],
    ids=["short-tuple", "long-id", "short-seq-len", "long-seq", "bad-utf8"],
)
def test_scan_stops_at_inconsistent_metadata(body: bytes) -> None:
    check_scan(log_of(GOOD) + _with_checksum(body) + frame(Record(b"after")), GOOD)


def test_checksummed_crafted_record_is_accepted() -> None:
    # The same helper with a well-formed body is a valid record: the cases above fail for their
    # metadata, not for the helper.
    body = bytes([FLAG_CLOSED]) + b"payload"
    (found,) = check_scan(_with_checksum(body), [Record(b"payload", closed=True)])
    assert found.end == PREFIX_SIZE + len(body)


def test_record_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment, "MAX_BODY", 10)
    encode(Record(b"123456789"))  # 1 flag byte + 9
    with pytest.raises(ValueError):
        encode(Record(b"1234567890"))
