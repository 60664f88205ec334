"""Between the storage values (Record, StreamConfig, Summary) and the postgres engine's rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from plugin_streams.origin.storage.base import Record, StreamConfig, Summary
from plugin_streams.origin.storage.config_fields import config_from_fields, config_to_fields
from plugin_streams.shared.producer import ProducerState, ProducerTable, ProducerTuple

#: The stream columns every lookup reads (a StreamRow's fields).
STREAM_COLUMNS = (
    "gen, state, config, last_access_ms, next_rec, first_rec, first_pos, stored_bytes, closed,"
    " closed_by_id, closed_by_epoch, closed_by_seq, stream_seq"
)


def text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def bytes_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class StreamRow:
    """One ds_stream row: what every origin agrees a stream incarnation is right now.

    Every request reads one (SharedRegistry.find), and its configuration hardly ever changes: it is
    kept as the row's JSON and decoded only when asked for (`config()`), mostly never."""

    generation: int
    config_json: str
    state: str  # live | soft_deleted | detached
    last_access_ms: int
    next_record: int
    first_record: int
    first_position: int | None
    stored_bytes: int
    closed: bool
    closed_by: ProducerTuple | None
    stream_seq: str | None

    @classmethod
    def decode(cls, row: Any) -> StreamRow:
        closed_by = None
        if row["closed_by_id"] is not None:
            closed_by = ProducerTuple(bytes_text(row["closed_by_id"]), row["closed_by_epoch"], row["closed_by_seq"])
        seq = row["stream_seq"]
        return cls(
            generation=row["gen"],
            config_json=row["config"],
            state=row["state"],
            last_access_ms=row["last_access_ms"],
            next_record=row["next_rec"],
            first_record=row["first_rec"],
            first_position=row["first_pos"],
            stored_bytes=row["stored_bytes"],
            closed=row["closed"],
            closed_by=closed_by,
            stream_seq=None if seq is None else bytes_text(seq),
        )

    def config(self) -> StreamConfig:
        return config_from_fields(json.loads(self.config_json))


def config_columns(config: StreamConfig) -> tuple[str, str, int | None, int | None, int | None]:
    """(state, config JSON, fork source, expires_at_ms, ttl_ms): the columns a configuration sets."""
    return (
        "soft_deleted" if config.soft_deleted else "live",
        json.dumps(config_to_fields(config)),
        config.fork.source_generation if config.fork is not None else None,
        config.expires.at_ms if config.expires is not None else None,
        config.ttl_seconds * 1000 if config.ttl_seconds is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """The arguments of ds_append for a batch of records (after the generation and expectation)."""

    lens: list[int]
    times: list[int]
    ids: list[bytes | None]
    epochs: list[int | None]
    seqs: list[int | None]
    data: bytes
    closed: bool
    closed_by: ProducerTuple | None
    stream_seq: str | None

    @classmethod
    def of(cls, records: Sequence[Record]) -> Batch:
        closed = False
        closed_by = None
        stream_seq = None
        for record in records:
            if record.closed:
                closed, closed_by = True, record.producer
            if record.stream_seq is not None:
                stream_seq = record.stream_seq
        producers = [record.producer for record in records]
        return cls(
            lens=[len(record.payload) for record in records],
            times=[record.written_ms or 0 for record in records],
            ids=[None if p is None else text_bytes(p.producer_id) for p in producers],
            epochs=[None if p is None else p.epoch for p in producers],
            seqs=[None if p is None else p.seq for p in producers],
            data=b"".join(record.payload for record in records),
            closed=closed,
            closed_by=closed_by,
            stream_seq=stream_seq,
        )

    def arguments(self) -> tuple[Any, ...]:
        by = self.closed_by
        return (
            self.lens,
            self.times,
            self.ids,
            self.epochs,
            self.seqs,
            self.data,
            self.closed,
            None if by is None else text_bytes(by.producer_id),
            None if by is None else by.epoch,
            None if by is None else by.seq,
            None if self.stream_seq is None else text_bytes(self.stream_seq),
        )


@dataclass(frozen=True, slots=True)
class RecordMeta:
    """What an origin needs of a record it did not write: its size, accept time and producer."""

    size: int
    written_ms: int
    producer: ProducerTuple | None


def record_metas(chunks: Iterable[Any], first: int) -> list[RecordMeta]:
    """The records numbered `first` and above in ds_chunk rows (first_rec, rec_lens, rec_times,
    producer_ids, producer_epochs, producer_seqs), in order."""
    out: list[RecordMeta] = []
    for chunk in chunks:
        number = chunk["first_rec"]
        for size, written, pid, epoch, seq in zip(
            chunk["rec_lens"],
            chunk["rec_times"],
            chunk["producer_ids"],
            chunk["producer_epochs"],
            chunk["producer_seqs"],
            strict=True,
        ):
            if number >= first:
                producer = None if pid is None else ProducerTuple(bytes_text(pid), epoch, seq)
                out.append(RecordMeta(size, written, producer))
            number += 1
    return out


def summary_of(row: StreamRow, metas: Sequence[RecordMeta], producers: Iterable[Any]) -> Summary:
    """A stream's Summary from its row, its kept records and its most recent producers (oldest first)."""
    summary = Summary(
        stream_seq=row.stream_seq,
        closed=row.closed,
        closed_by=row.closed_by,
        producers=ProducerTable(
            (bytes_text(p["producer_id"]), ProducerState(p["epoch"], p["last_seq"])) for p in producers
        ),
    )
    for meta in metas:
        summary.sizes.append(meta.size)
        summary.times.append(meta.written_ms)
    return summary
