-- Inventory: hosts as providers list them, merged with the hosts agents enrolled.
-- `labels` stays the agent's labels; the provider's are `provider_labels` (the store
-- merges them when reading). A host known from a provider only has status `missing`.
ALTER TABLE hosts ADD COLUMN address TEXT;
ALTER TABLE hosts ADD COLUMN provider TEXT;
ALTER TABLE hosts ADD COLUMN provider_id TEXT;
ALTER TABLE hosts ADD COLUMN region TEXT;
ALTER TABLE hosts ADD COLUMN provider_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN stale INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN drained INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX hosts_provider_id ON hosts (provider, provider_id);

-- Every change of a host (added, changed, removed, up, down, drained, undrained), kept
-- after the host row is gone. `changes` maps a field to its {from, to}.
CREATE TABLE host_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id TEXT NOT NULL,
    host_name TEXT NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX host_changes_host ON host_changes (host_id, id);
CREATE INDEX host_changes_name ON host_changes (host_name, id);

-- Inventory providers: sync state, and the claim that lets one controller sync each.
CREATE TABLE providers (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    host_count INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    last_attempt_at INTEGER,
    last_ok_at INTEGER,
    next_due_at INTEGER NOT NULL
);
