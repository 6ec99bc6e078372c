-- One problem, one incident: alerts from the same service or host join the open incident
-- (correlation keys such as 'agent=web-1', 'service=api'), which lists them and is the one
-- conversation with each responder channel.

-- The route's escalation policy, on its groups: such a group feeds incidents instead of
-- sending group messages of its own.
ALTER TABLE notify_groups ADD COLUMN escalation_policy text;

-- The route's receiver (told together with the first level) and the correlation keys of the
-- alerts the incident holds; an open incident is joined by alerts sharing one of its keys.
ALTER TABLE incidents ADD COLUMN receiver text;
ALTER TABLE incidents ADD COLUMN correlation text[] NOT NULL DEFAULT '{}';
CREATE INDEX incidents_open_correlation_idx ON incidents USING gin (correlation)
    WHERE status <> 'resolved';

CREATE TABLE incident_alerts (
    incident_id   bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    fingerprint   text NOT NULL,
    group_key     text NOT NULL,
    labels        jsonb NOT NULL,
    annotations   jsonb NOT NULL,
    state         text NOT NULL CHECK (state IN ('firing', 'resolved')),
    value         double precision NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    joined_at     timestamptz NOT NULL,
    PRIMARY KEY (incident_id, fingerprint)
);
CREATE INDEX incident_alerts_fingerprint_idx ON incident_alerts (fingerprint);

-- Every destination an incident has messaged (so an update edits those messages, and the
-- resolution reaches exactly them), with the escalation level that first reached it.
CREATE TABLE incident_destinations (
    incident_id   bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    destination   text NOT NULL,
    level         integer NOT NULL,
    PRIMARY KEY (incident_id, destination)
);
