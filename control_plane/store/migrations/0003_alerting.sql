-- Alerting rules defined through the API (file rules live in rules/*.yml), the alerts' states
-- (so a restart neither re-fires nor forgets) and their transition history.

CREATE TABLE alert_rules (
    name          text PRIMARY KEY,
    spec          jsonb NOT NULL,               -- the rule in the API's shape
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per alert (rule + label set) that is pending, firing or recently resolved, per
-- evaluation shard (agents are sharded; the shard's evaluator holds an advisory lock).
CREATE TABLE alert_states (
    shard           integer NOT NULL,
    rule_name       text NOT NULL,
    fingerprint     text NOT NULL,
    labels          jsonb NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
    value           double precision NOT NULL,
    active_at       timestamptz NOT NULL,
    last_active_at  timestamptz NOT NULL,
    fired_at        timestamptz,
    resolved_at     timestamptz,
    flapping        boolean NOT NULL DEFAULT false,
    flips           double precision[] NOT NULL DEFAULT '{}',  -- epoch seconds
    annotations     jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, rule_name, fingerprint)
);
CREATE INDEX alert_states_state_idx ON alert_states (state);

CREATE TABLE alert_events (
    event_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    rule_name     text NOT NULL,
    fingerprint   text NOT NULL,
    labels        jsonb NOT NULL,
    previous      text NOT NULL,
    state         text NOT NULL,
    flapping      boolean NOT NULL,
    value         double precision NOT NULL,
    annotations   jsonb NOT NULL,
    -- Taken by the notification dispatcher (FOR UPDATE SKIP LOCKED) in the transaction that
    -- files the alert into its notification group.
    notified      boolean NOT NULL DEFAULT false
);
CREATE INDEX alert_events_unnotified_idx ON alert_events (event_id) WHERE NOT notified;
CREATE INDEX alert_events_rule_idx ON alert_events (rule_name, event_id);
CREATE INDEX alert_events_fingerprint_idx ON alert_events (fingerprint, event_id);

-- Notifications: alerts grouped per route (group_by), flushed after group_wait then every
-- group_interval, re-sent after repeat_interval; each send is an outbox row per destination.
CREATE TABLE notify_groups (
    group_key          text PRIMARY KEY,
    receiver           text NOT NULL,
    group_labels       jsonb NOT NULL,
    group_interval_s   double precision NOT NULL,
    repeat_interval_s  double precision NOT NULL,
    next_flush_at      timestamptz NOT NULL,
    last_sent_at       timestamptz,
    last_sent_digest   text,
    created_at         timestamptz NOT NULL
);
CREATE INDEX notify_groups_due_idx ON notify_groups (next_flush_at);

CREATE TABLE notify_group_alerts (
    group_key     text NOT NULL REFERENCES notify_groups (group_key) ON DELETE CASCADE,
    fingerprint   text NOT NULL,
    labels        jsonb NOT NULL,
    annotations   jsonb NOT NULL,
    state         text NOT NULL CHECK (state IN ('firing', 'resolved')),
    flapping      boolean NOT NULL DEFAULT false,
    value         double precision NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    PRIMARY KEY (group_key, fingerprint)
);

CREATE TABLE silences (
    silence_id    uuid PRIMARY KEY,
    matchers      jsonb NOT NULL,            -- ["alertname=\"X\"", ...]
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL,
    created_by    text NOT NULL,
    comment       text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_ends_idx ON silences (ends_at);

-- One row per destination (receiver + channel): its lock serialises sends to it across
-- control planes, and next_send_at carries its rate limit and any Retry-After.
CREATE TABLE notify_destinations (
    destination   text PRIMARY KEY,
    next_send_at  timestamptz NOT NULL
);

CREATE TABLE notify_outbox (
    outbox_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination      text NOT NULL REFERENCES notify_destinations (destination),
    group_key        text NOT NULL,
    payload          jsonb NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    response_status  integer,
    -- What the channel reports back (a message id, a thread): the delivery receipt.
    receipt          jsonb,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX notify_outbox_pending_idx ON notify_outbox (destination, outbox_id)
    WHERE status = 'pending';

-- Incidents: opened from an alert group whose route has an escalation policy, or by API.
-- next_escalation_at is the durable escalation timer (NULL: nothing scheduled); a control plane
-- claims due incidents with FOR UPDATE SKIP LOCKED, so after a crash escalation resumes at
-- the stored level.
CREATE TABLE incidents (
    incident_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title                text NOT NULL,
    status               text NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    policy               text NOT NULL,
    group_key            text,
    level                integer NOT NULL DEFAULT 0,   -- the next level to notify
    repeats_done         integer NOT NULL DEFAULT 0,
    next_escalation_at   timestamptz,
    assignee             text,
    created_at           timestamptz NOT NULL,
    acknowledged_at      timestamptz,
    resolved_at          timestamptz,
    -- Gathered once after opening, by source name (recent series; later logs, slow queries,
    -- traces); NULL until gathered.
    context              jsonb
);
CREATE INDEX incidents_context_pending_idx ON incidents (incident_id) WHERE context IS NULL;
CREATE UNIQUE INDEX incidents_open_group_idx ON incidents (group_key) WHERE status <> 'resolved';
CREATE INDEX incidents_timer_idx ON incidents (next_escalation_at)
    WHERE next_escalation_at IS NOT NULL;

CREATE TABLE incident_events (
    event_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    kind          text NOT NULL,   -- opened, escalated, acknowledged, resolved, note, reassigned
    actor         text NOT NULL,
    detail        jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_events_incident_idx ON incident_events (incident_id, event_id);

-- Secrets shared by every control plane, created once (the first start wins): the key that
-- signs incident-page links.
CREATE TABLE alerting_secrets (
    name        text PRIMARY KEY,
    secret      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
