-- People and on-call schedules: escalation levels may target a person (user:<id>) or whoever
-- is on call in a schedule (schedule:<id>), resolved when the level fires.

-- A person: contact methods ([{type: slack|sms|alimtalk|email, address}]) and the order they
-- are used in ([{contact: index into contact_methods, delay_s}]).
CREATE TABLE oncall_users (
    user_id             text PRIMARY KEY,
    name                text NOT NULL,
    timezone            text NOT NULL DEFAULT 'UTC',
    contact_methods     jsonb NOT NULL DEFAULT '[]'::jsonb,
    notification_rules  jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- A schedule: rotation layers in order (later layers override earlier ones where they have
-- someone on call), each {name, start, rotation_s, users, end, restrictions}.
CREATE TABLE oncall_schedules (
    schedule_id   text PRIMARY KEY,
    name          text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    layers        jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Someone covers a shift: over every layer of the schedule, from starts_at to ends_at (the
-- latest override wins where two overlap).
CREATE TABLE oncall_overrides (
    override_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id   text NOT NULL REFERENCES oncall_schedules (schedule_id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES oncall_users (user_id) ON DELETE CASCADE,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oncall_overrides_schedule_idx ON oncall_overrides (schedule_id, ends_at);

-- A person's later notification rules (delay_s > 0): a durable timer like the incident's own.
-- Due rows are claimed with FOR UPDATE SKIP LOCKED; sent only while the incident is still
-- unacknowledged, otherwise cancelled.
CREATE TABLE oncall_pages (
    page_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    level         integer NOT NULL,
    user_id       text NOT NULL,
    contact       jsonb NOT NULL,          -- {type, address} as it was when the level fired
    target        text NOT NULL,           -- the level's target (user:<id> or schedule:<id>)
    due_at        timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'sent', 'cancelled'))
);
CREATE INDEX oncall_pages_due_idx ON oncall_pages (due_at) WHERE status = 'pending';
