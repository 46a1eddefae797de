-- Rollouts: a deploy execution's plan as units (one service batch each, run in order),
-- the instances each unit changes, and the lifecycle steps of each instance.
CREATE TABLE rollouts (
    execution_id TEXT PRIMARY KEY,
    model_version INTEGER NOT NULL,
    previous_version INTEGER,
    state TEXT NOT NULL,
    unit INTEGER NOT NULL,
    units INTEGER NOT NULL,
    reverting INTEGER NOT NULL DEFAULT 0,
    plan_text TEXT NOT NULL,
    error TEXT,
    last_progress_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state);

CREATE TABLE rollout_units (
    execution_id TEXT NOT NULL,
    unit INTEGER NOT NULL,
    service TEXT NOT NULL,
    batch INTEGER NOT NULL,
    canary INTEGER NOT NULL,
    revert INTEGER NOT NULL,
    policy TEXT NOT NULL,
    PRIMARY KEY (execution_id, unit)
);

CREATE TABLE rollout_instances (
    execution_id TEXT NOT NULL,
    unit INTEGER NOT NULL,
    host_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    service TEXT NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    from_version TEXT,
    to_version TEXT,
    to_state TEXT,
    gated INTEGER NOT NULL,
    status TEXT NOT NULL,
    gate_started_at INTEGER,
    healthy_since INTEGER,
    error TEXT,
    PRIMARY KEY (execution_id, unit, host_id, service, idx)
);

CREATE TABLE rollout_steps (
    execution_id TEXT NOT NULL,
    unit INTEGER NOT NULL,
    host_id TEXT NOT NULL,
    service TEXT NOT NULL,
    idx INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    transition TEXT NOT NULL,
    version TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    command_id TEXT UNIQUE,
    error TEXT,
    output TEXT NOT NULL DEFAULT '',
    started_at INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (execution_id, unit, host_id, service, idx, pos)
);
