-- A version of the datastore, bumped by every key change, so that readers can keep a
-- snapshot until it moves.
INSERT INTO counters (name, value) VALUES ('kv_version', 0);
