-- Version 2: remember when a job was flagged stalled (pings arrive, cells_done frozen)
-- and how often, so the owner can see it and the queue can offer the job again.
ALTER TABLE jobs ADD COLUMN stalled_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN stall_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_status_created ON jobs (status, created);
