-- Generated config and load-balancer drains (issue 5).

-- A target may carry its own command (a generator writes different bytes per host).
ALTER TABLE targets ADD COLUMN command TEXT;

-- Per generator and target host: what was last asked for, and what is live.
CREATE TABLE generator_outputs (
    generator TEXT NOT NULL,
    host_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    wanted_sha TEXT,
    wanted_content TEXT,
    wanted_epoch BIGINT,
    execution_id TEXT,
    applied_sha TEXT,
    applied_content TEXT,
    applied_epoch BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (generator, host_id)
);
CREATE INDEX generator_outputs_execution ON generator_outputs (execution_id);

-- Instances taken out of their load balancer's pool by a rollout.
CREATE TABLE drains (
    service TEXT NOT NULL,
    host_id TEXT NOT NULL,
    idx BIGINT NOT NULL,
    execution_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (service, host_id, idx)
);

-- Monotonic counters; drain_epoch grows with every drain change.
CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO counters (name, value) VALUES ('drain_epoch', 0);

ALTER TABLE rollout_instances ADD COLUMN lb_epoch BIGINT;
ALTER TABLE rollout_instances ADD COLUMN lb_ready_at BIGINT;
