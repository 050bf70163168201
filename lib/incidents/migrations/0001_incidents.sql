-- parkwatch incidents: schema version 1.
-- One dialect for SQLite and PostgreSQL: TEXT, BIGINT, DOUBLE PRECISION only;
-- ids are allocated by the application under the store's write lock
-- (no AUTOINCREMENT / SERIAL), booleans are BIGINT 0/1, times are ms since
-- the Unix epoch (UTC). Statements are separated by a line ending in ';'.

CREATE TABLE incidents (
    id BIGINT PRIMARY KEY,
    status TEXT NOT NULL,
    source TEXT NOT NULL,
    item TEXT NOT NULL,
    class TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT,
    severity TEXT,
    lon DOUBLE PRECISION,
    lat DOUBLE PRECISION,
    address TEXT,
    unit_grid TEXT,
    community_grid TEXT,
    responsibility_grid TEXT,
    grid_worker TEXT,
    outside_grid BIGINT NOT NULL,
    department TEXT NOT NULL,
    assignee_kind TEXT,
    assignee TEXT,
    equipment_fault BIGINT NOT NULL,
    camera TEXT,
    sensor TEXT,
    edge TEXT,
    rule_id TEXT,
    zone TEXT,
    alarm_kind TEXT,
    -- camera|rule|zone (or sensor|rule) while the incident is open; NULL once
    -- closed or cancelled. Unique, so two open incidents for one key cannot exist.
    correlation_key TEXT,
    alarm_count BIGINT NOT NULL,
    reporter TEXT,
    reporter_contact TEXT,
    time_limit BIGINT NOT NULL,
    time_unit TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    filed_at_ms BIGINT,
    dispatched_at_ms BIGINT,
    due_at_ms BIGINT,
    handled_at_ms BIGINT,
    closed_at_ms BIGINT,
    cancelled_at_ms BIGINT,
    overdue BIGINT NOT NULL,
    escalated_at_ms BIGINT,
    rework_count BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE UNIQUE INDEX incidents_correlation ON incidents (correlation_key);

CREATE INDEX incidents_status ON incidents (status, id);

CREATE INDEX incidents_created ON incidents (created_at_ms);

CREATE INDEX incidents_due ON incidents (overdue, due_at_ms);

CREATE INDEX incidents_unit_grid ON incidents (unit_grid);

-- Append-only: the application only ever inserts here.
CREATE TABLE timeline (
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    note TEXT,
    attachments TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);

-- The latest state of every alarm.
CREATE TABLE alarms (
    alarm_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    edge TEXT NOT NULL,
    camera TEXT,
    sensor TEXT,
    rule_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    zone TEXT,
    state TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    last_event_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    incident_id BIGINT,
    snapshot TEXT,
    lon DOUBLE PRECISION,
    lat DOUBLE PRECISION,
    unit_grid TEXT,
    message TEXT,
    received_at_ms BIGINT NOT NULL
);

CREATE INDEX alarms_incident ON alarms (incident_id);

CREATE INDEX alarms_started ON alarms (started_at_ms);

-- Every alarm event received, once: the edge re-sends after reconnects.
CREATE TABLE alarm_events (
    alarm_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    edge TEXT NOT NULL,
    event TEXT NOT NULL,
    event_at_ms BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    snapshot_seq BIGINT,
    snapshot_sha256 TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (alarm_id, seq)
);

CREATE INDEX alarm_events_snapshot ON alarm_events (snapshot_sha256);

-- Blobs on disk (content-addressed), known to the database.
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE alarm_snapshots (
    alarm_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    edge TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    PRIMARY KEY (alarm_id, sha256)
);

-- The live feed behind the SSE stream; ids are commit-ordered.
CREATE TABLE feed (
    id BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    incident_id BIGINT,
    alarm_id TEXT,
    camera TEXT,
    alarm_kind TEXT,
    severity TEXT,
    unit_grid TEXT,
    payload TEXT NOT NULL
);
