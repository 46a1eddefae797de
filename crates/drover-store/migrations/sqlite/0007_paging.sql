-- Lists page by cursor: artifacts newest first.
CREATE INDEX artifacts_created ON artifacts (created_at, sha256);
