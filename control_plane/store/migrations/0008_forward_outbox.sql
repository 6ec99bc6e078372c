-- Remote write out (control_plane/forward/): the outbox of committed samples to forward.
-- One row per ingest commit that stored samples, written in the same transaction as the
-- samples (so a commit is forwarded if and only if it happened), deleted once the remote store
-- has acknowledged it. Replicas claim rows with FOR UPDATE SKIP LOCKED and a lease, so no
-- batch is sent twice by two replicas; a replica that dies mid-send loses its lease.
CREATE TABLE forward_outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    committed_at   timestamptz NOT NULL DEFAULT now(),
    sample_count   integer NOT NULL CHECK (sample_count > 0),
    -- series ids, values and run-length coded times (control_plane/forward/payload.py)
    payload        bytea NOT NULL,
    claimed_by     text,
    claimed_until  timestamptz
);
-- Floats barely compress: keep the payload out of line without pglz spending CPU on it.
ALTER TABLE forward_outbox ALTER COLUMN payload SET STORAGE EXTERNAL;
