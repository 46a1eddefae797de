-- drover store, PostgreSQL dialect. Times are Unix milliseconds (BIGINT); JSON is TEXT.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT,
    host_id TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_host ON tokens (host_id);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    facts TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX hosts_status_seen ON hosts (status, last_seen_at);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_type ON events (type, id);
CREATE INDEX events_time ON events (time);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    selector TEXT NOT NULL,
    spec TEXT NOT NULL,
    command TEXT NOT NULL,
    parallel BIGINT,
    timeout_ms BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX executions_status ON executions (status);

CREATE TABLE targets (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    host_id TEXT NOT NULL,
    ord BIGINT NOT NULL,
    host_name TEXT NOT NULL,
    status TEXT NOT NULL,
    command_id TEXT UNIQUE,
    exit_code BIGINT,
    signal BIGINT,
    error TEXT,
    dispatched_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    deadline BIGINT,
    duration_ms BIGINT,
    output_bytes BIGINT NOT NULL DEFAULT 0,
    truncated BIGINT NOT NULL DEFAULT 0,
    next_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (execution_id, host_id)
);
CREATE INDEX targets_host_status ON targets (host_id, status);
CREATE INDEX targets_status_deadline ON targets (status, deadline);

CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    host_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    cancel_delivered BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX commands_host_status ON commands (host_id, status);

CREATE TABLE output (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    host_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    stream TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX output_execution ON output (execution_id, id);
