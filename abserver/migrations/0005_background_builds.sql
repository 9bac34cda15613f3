-- Version 5: snapshots are built outside the request (abserver/builder.py). A submitted job
-- waits in status 'preparing' until a builder has stored its snapshot; until then it has
-- no snapshot (jobs.snapshot_id becomes nullable: the Python step of version 5 in
-- abserver/migrations.py, which SQLite can only do by rebuilding the table).
-- build_owner / build_lease_expires: which builder holds the build and until when (it
-- renews this while it works; an expired lease lets another builder take the job).
-- build_attempts: builds started; a job whose builds keep dying is failed after a few.
-- error_code: the machine-readable reason of a failed build (too_wide, missing_lowlevel…).
ALTER TABLE jobs ADD COLUMN build_owner VARCHAR(64);
ALTER TABLE jobs ADD COLUMN build_lease_expires DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN build_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN error_code VARCHAR(64);
