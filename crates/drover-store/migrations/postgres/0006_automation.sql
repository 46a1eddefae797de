-- Automation (issue 4): packs, rule state, the datastore, webhooks, rule enforcements,
-- action executions and workflow state.

-- Installed packs: the files as installed (JSON list of {path, text}); actions, rules
-- and workflows are decoded from them.
CREATE TABLE packs (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    files TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    installed_by TEXT NOT NULL
);

-- `drover rules enable|disable` overrides the `enabled` written in the rule file.
CREATE TABLE rule_overrides (
    rule_ref TEXT PRIMARY KEY,
    enabled BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- The datastore. Secret values are AEAD ciphertext (base64), never plaintext.
CREATE TABLE kv (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    secret BIGINT NOT NULL,
    expires_at BIGINT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE INDEX kv_expires ON kv (expires_at);

-- Registered webhooks with their own secret (token or HMAC key, encrypted).
CREATE TABLE webhooks (
    name TEXT PRIMARY KEY,
    auth TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

-- Every time a rule matched an event: what it did (fired, throttled, rate_limited,
-- failed) and the execution it started.
CREATE TABLE rule_enforcements (
    id BIGSERIAL PRIMARY KEY,
    rule_ref TEXT NOT NULL,
    event_id BIGINT NOT NULL,
    execution_id TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    throttle_key TEXT,
    source_execution TEXT,
    time BIGINT NOT NULL
);
CREATE INDEX rule_enforcements_rule ON rule_enforcements (rule_ref, id);
CREATE INDEX rule_enforcements_throttle ON rule_enforcements (rule_ref, throttle_key, time);
CREATE INDEX rule_enforcements_execution ON rule_enforcements (execution_id);

-- Action executions live in `executions` (kind `action`), linked to what started them.
ALTER TABLE executions ADD COLUMN action_ref TEXT;
ALTER TABLE executions ADD COLUMN parent_id TEXT;
ALTER TABLE executions ADD COLUMN task_key TEXT;
ALTER TABLE executions ADD COLUMN rule_ref TEXT;
ALTER TABLE executions ADD COLUMN event_id BIGINT;
ALTER TABLE executions ADD COLUMN params TEXT;
ALTER TABLE executions ADD COLUMN result TEXT;
ALTER TABLE executions ADD COLUMN not_before BIGINT;
ALTER TABLE executions ADD COLUMN claimed_by TEXT;
ALTER TABLE executions ADD COLUMN claim_until BIGINT;
ALTER TABLE executions ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
CREATE INDEX executions_parent ON executions (parent_id);
CREATE INDEX executions_action_status ON executions (action_ref, status);
CREATE UNIQUE INDEX executions_task ON executions (parent_id, task_key);

-- A workflow's conductor state, written after every transition.
CREATE TABLE workflow_states (
    execution_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Timer triggers: when each timer rule fires next (claimed by compare-and-set).
CREATE TABLE timers (
    rule_ref TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    next_at BIGINT NOT NULL
);

-- How far the rule engine has read the event log.
INSERT INTO counters (name, value) VALUES ('automation_cursor', 0);
INSERT INTO counters (name, value) VALUES ('catalog_epoch', 0);
CREATE INDEX rule_enforcements_source ON rule_enforcements (source_execution);
