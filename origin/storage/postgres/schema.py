"""The postgres engine's schema: versioned migrations, applied by the origin itself at start-up.

Every origin runs `migrate` when it starts; the first to take the advisory lock applies what is
missing, the others wait for it and then find nothing to do, so several origins starting together
never race on a half-built schema. A migration is appended, never edited: the version a database
records names exactly the statements it has run.

Layout (one row per stream incarnation, one row per group-commit batch):
- ds_stream: an incarnation's configuration and moving state (record count, byte count, closure,
  Stream-Seq). Its row is the lock every append takes: the conditional append in ds_append
  compares the record count the origin decided against with the row's, under FOR UPDATE.
- ds_chunk: the payloads of one batch, concatenated, with each record's length, accept time and
  producer tuple (so an origin catching up on another's appends rebuilds producer state exactly).
- ds_producer: the last accepted (epoch, seq) of each producer of a stream, and the record that
  set it (the most recent ones are what a stream remembers, as ProducerTable does in memory).
"""

from __future__ import annotations

from typing import Final

import asyncpg
from asyncpg.pool import PoolConnectionProxy

#: pg_advisory_xact_lock key of the migrations ("ds-migr" in ASCII).
MIGRATION_LOCK: Final = 0x64732D6D696772

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: streams, batches, producers, and the conditional append.
    """
    CREATE SEQUENCE ds_generation;
    CREATE TABLE ds_stream (
        gen bigint PRIMARY KEY,
        path text COLLATE "C" NOT NULL,
        -- soft_deleted: DELETEd while forks read its data, still holding its path; detached: expired
        -- while forks read its data, its path free for a new stream.
        state text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'soft_deleted', 'detached')),
        config jsonb NOT NULL,
        fork_source bigint REFERENCES ds_stream (gen),  -- a source with forks cannot be removed
        expires_at_ms bigint,
        ttl_ms bigint,
        created_ms bigint NOT NULL,
        last_access_ms bigint NOT NULL,
        next_rec bigint NOT NULL DEFAULT 0,
        first_rec bigint NOT NULL DEFAULT 0,
        first_pos bigint,
        stored_bytes bigint NOT NULL DEFAULT 0,
        closed boolean NOT NULL DEFAULT false,
        -- Producer ids and Stream-Seq are the client's text, NUL and lone surrogates included:
        -- kept as UTF-8 (surrogatepass) bytes, which PostgreSQL's text type could not hold.
        closed_by_id bytea,
        closed_by_epoch bigint,
        closed_by_seq bigint,
        stream_seq bytea
    ) WITH (fillfactor = 85);
    CREATE UNIQUE INDEX ds_stream_path ON ds_stream (path) WHERE state <> 'detached';
    CREATE INDEX ds_stream_fork_source ON ds_stream (fork_source) WHERE fork_source IS NOT NULL;
    CREATE INDEX ds_stream_expiry ON ds_stream (expires_at_ms) WHERE expires_at_ms IS NOT NULL;
    CREATE INDEX ds_stream_ttl ON ds_stream ((last_access_ms + ttl_ms)) WHERE ttl_ms IS NOT NULL;

    CREATE TABLE ds_chunk (
        gen bigint NOT NULL REFERENCES ds_stream ON DELETE CASCADE,
        first_rec bigint NOT NULL,
        rec_lens integer[] NOT NULL,
        rec_times bigint[] NOT NULL,
        producer_ids bytea[] NOT NULL,
        producer_epochs bigint[] NOT NULL,
        producer_seqs bigint[] NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (gen, first_rec)
    );
    -- Stored uncompressed out of line: a read of 64 KiB from a batch of 8 MiB fetches only its slices.
    ALTER TABLE ds_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

    CREATE TABLE ds_producer (
        gen bigint NOT NULL REFERENCES ds_stream ON DELETE CASCADE,
        producer_id bytea NOT NULL,
        epoch bigint NOT NULL,
        last_seq bigint NOT NULL,
        last_rec bigint NOT NULL,
        PRIMARY KEY (gen, producer_id)
    );
    CREATE INDEX ds_producer_recent ON ds_producer (gen, last_rec);

    -- Appends records to a stream in one statement (one transaction, one round trip).
    -- p_expected: the record count the caller's decisions were made against (NULL: append anyway).
    -- status 0: appended, next_rec is the new count; 1: another origin appended first (next_rec is
    -- the current count; decide again); 2: no such stream; 3: the stream is soft-deleted.
    CREATE FUNCTION ds_append(
        p_gen bigint, p_expected bigint, p_lens integer[], p_times bigint[], p_ids bytea[],
        p_epochs bigint[], p_seqs bigint[], p_data bytea, p_closed boolean, p_closed_by_id bytea,
        p_closed_by_epoch bigint, p_closed_by_seq bigint, p_stream_seq bytea,
        OUT status integer, OUT next_rec bigint
    ) LANGUAGE plpgsql AS $$
    DECLARE
        v_next bigint;
        v_state text;
        v_count integer := coalesce(cardinality(p_lens), 0);
    BEGIN
        SELECT s.next_rec, s.state INTO v_next, v_state FROM ds_stream s WHERE s.gen = p_gen FOR UPDATE;
        IF NOT FOUND THEN
            status := 2; RETURN;
        END IF;
        next_rec := v_next;
        IF p_expected IS NOT NULL AND v_next <> p_expected THEN
            status := 1; RETURN;
        END IF;
        IF p_expected IS NOT NULL AND v_state <> 'live' THEN
            status := 3; RETURN;
        END IF;
        IF v_count > 0 THEN
            INSERT INTO ds_chunk VALUES (p_gen, v_next, p_lens, p_times, p_ids, p_epochs, p_seqs, p_data);
            INSERT INTO ds_producer AS p (gen, producer_id, epoch, last_seq, last_rec)
                SELECT DISTINCT ON (u.id) p_gen, u.id, u.epoch, u.seq, v_next + u.ord - 1
                FROM unnest(p_ids, p_epochs, p_seqs) WITH ORDINALITY AS u(id, epoch, seq, ord)
                WHERE u.id IS NOT NULL
                ORDER BY u.id, u.ord DESC
            ON CONFLICT (gen, producer_id) DO UPDATE
                SET epoch = excluded.epoch, last_seq = excluded.last_seq, last_rec = excluded.last_rec;
            UPDATE ds_stream s SET
                next_rec = v_next + v_count,
                stored_bytes = s.stored_bytes + octet_length(p_data),
                closed = s.closed OR p_closed,
                closed_by_id = CASE WHEN p_closed THEN p_closed_by_id ELSE s.closed_by_id END,
                closed_by_epoch = CASE WHEN p_closed THEN p_closed_by_epoch ELSE s.closed_by_epoch END,
                closed_by_seq = CASE WHEN p_closed THEN p_closed_by_seq ELSE s.closed_by_seq END,
                stream_seq = coalesce(p_stream_seq, s.stream_seq)
            WHERE s.gen = p_gen;
        END IF;
        status := 0;
        next_rec := v_next + v_count;
    END $$;
    """,
    # 2: the change feed of every origin (creates, closures, deletions, expiries), numbered by the
    # database, and the feed's epoch: one feed, so a replica can follow any origin.
    """
    CREATE TABLE ds_change (seq bigserial PRIMARY KEY, event jsonb NOT NULL);
    CREATE TABLE ds_meta (key text PRIMARY KEY, value text NOT NULL);
    INSERT INTO ds_meta VALUES ('feed_epoch', md5(random()::text || clock_timestamp()::text));
    """,
)


async def migrate(connection: asyncpg.Connection | PoolConnectionProxy) -> int:
    """Bring the schema up to date; returns the version the database is at."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await connection.execute("CREATE TABLE IF NOT EXISTS ds_schema (version integer NOT NULL)")
        version = await connection.fetchval("SELECT max(version) FROM ds_schema") or 0
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(statements)
            await connection.execute("INSERT INTO ds_schema (version) VALUES ($1)", number)
        return len(MIGRATIONS)
