-- drover store, SQLite dialect. Times are Unix milliseconds (INTEGER); JSON is TEXT.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT,
    host_id TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    last_used_at INTEGER
);
CREATE INDEX tokens_host ON tokens (host_id);

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    facts TEXT NOT NULL,
    enrolled_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX hosts_status_seen ON hosts (status, last_seen_at);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
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
    parallel INTEGER,
    timeout_ms INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX executions_status ON executions (status);

CREATE TABLE targets (
    execution_id TEXT NOT NULL REFERENCES executions (id),
    host_id TEXT NOT NULL,
    ord INTEGER NOT NULL,
    host_name TEXT NOT NULL,
    status TEXT NOT NULL,
    command_id TEXT UNIQUE,
    exit_code INTEGER,
    signal INTEGER,
    error TEXT,
    dispatched_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER,
    deadline INTEGER,
    duration_ms INTEGER,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    truncated INTEGER NOT NULL DEFAULT 0,
    next_seq INTEGER NOT NULL DEFAULT 0,
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
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_delivered INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX commands_host_status ON commands (host_id, status);

CREATE TABLE output (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    host_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX output_execution ON output (execution_id, id);
