-- Storage sizes for the per-owner storage quota (abserver/quota.py).
-- The quota counts everything an owner stores; summing LENGTH() of result texts and
-- snapshot definitions would read every one of them on each check, so their sizes are
-- kept beside them, set when they are written. Existing rows are measured once here
-- (result JSON and definitions are ASCII-only JSON: characters = bytes).
ALTER TABLE jobs ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET stored_bytes = COALESCE(LENGTH(result), 0) + COALESCE(LENGTH(model), 0);
ALTER TABLE snapshots ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE snapshots SET size_bytes = COALESCE(LENGTH(data), 0);
ALTER TABLE datasets ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE datasets SET size_bytes = COALESCE(LENGTH(classes), 0) + COALESCE(LENGTH(name), 0)
    + COALESCE(LENGTH(description), 0);
