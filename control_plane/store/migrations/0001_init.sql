-- Agents, tokens, series and time-partitioned samples.

CREATE TABLE agents (
    agent_id      text PRIMARY KEY,
    hostname      text NOT NULL DEFAULT '',
    labels        jsonb NOT NULL DEFAULT '{}'::jsonb,
    enrolled_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz,
    last_seq      bigint
);

CREATE TABLE api_tokens (
    token_id      text PRIMARY KEY,            -- the public half of the token
    secret_hash   bytea NOT NULL,              -- sha256 of the secret half
    kind          text NOT NULL CHECK (kind IN ('admin', 'enrolment', 'agent')),
    name          text NOT NULL,
    scopes        text[] NOT NULL DEFAULT '{}',
    agent_id      text REFERENCES agents (agent_id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    CHECK ((kind = 'agent') = (agent_id IS NOT NULL))
);
CREATE INDEX api_tokens_agent_idx ON api_tokens (agent_id) WHERE agent_id IS NOT NULL;

-- One row per distinct (agent, metric name, label set); samples refer to it by id so the hot
-- table stays narrow (16 bytes of payload per sample).
CREATE TABLE series (
    series_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id      text NOT NULL,
    name          text NOT NULL,
    labels        jsonb NOT NULL,
    labels_key    text NOT NULL,               -- canonical (sorted) JSON of labels
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_id, name, labels_key)
);
CREATE INDEX series_name_idx ON series (name, series_id);
CREATE INDEX series_labels_idx ON series USING gin (labels jsonb_path_ops);

-- Daily range partitions are created ahead and dropped after retention by the maintenance job.
CREATE TABLE samples (
    series_id     bigint NOT NULL,
    ts            timestamptz NOT NULL,
    value         double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX samples_series_ts_idx ON samples (series_id, ts);

-- Idempotency: a report id is stored once, in the same transaction as its samples.
CREATE TABLE ingested_reports (
    agent_id      text NOT NULL,
    report_id     uuid NOT NULL,
    seq           bigint,
    sample_count  integer NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, report_id)
);
CREATE INDEX ingested_reports_received_idx ON ingested_reports (received_at);
