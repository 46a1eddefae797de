-- Deploy engine: artifacts, live instances, model versions.
CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE instances (
    host_id TEXT NOT NULL,
    service TEXT NOT NULL,
    idx INTEGER NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL,
    health TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    pid INTEGER,
    restarts INTEGER NOT NULL DEFAULT 0,
    drift TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host_id, service, idx)
);
CREATE INDEX instances_service ON instances (service);

CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    files TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
