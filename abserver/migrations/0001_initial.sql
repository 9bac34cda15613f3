-- Version 1: users, datasets, low-level documents, snapshots, evaluation jobs.
-- Placeholders ({SERIAL_PK}, {BLOB}) are filled per dialect by abserver/migrations.py,
-- so one file serves SQLite and PostgreSQL. Times are UNIX seconds (DOUBLE PRECISION).
CREATE TABLE users (
    id {SERIAL_PK},
    name VARCHAR(64) NOT NULL UNIQUE,
    token_sha256 CHAR(64) NOT NULL UNIQUE,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE datasets (
    id CHAR(36) PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    public INTEGER NOT NULL,
    classes TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    last_edited DOUBLE PRECISION NOT NULL
);
CREATE TABLE lowlevel (
    mbid CHAR(36) PRIMARY KEY,
    document {BLOB} NOT NULL,
    artist VARCHAR(255),
    owner_id INTEGER REFERENCES users (id),
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE snapshots (
    id CHAR(36) PRIMARY KEY,
    dataset_id CHAR(36) NOT NULL REFERENCES datasets (id),
    data TEXT NOT NULL,
    bundle {BLOB} NOT NULL,
    bundle_sha256 CHAR(64) NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE jobs (
    id CHAR(36) PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    dataset_id CHAR(36) NOT NULL REFERENCES datasets (id),
    snapshot_id CHAR(36) NOT NULL REFERENCES snapshots (id),
    status VARCHAR(16) NOT NULL,
    status_msg TEXT,
    eval_location VARCHAR(16) NOT NULL,
    options TEXT NOT NULL,
    seed INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    runner_id CHAR(36),
    runner_name VARCHAR(255),
    runner_version VARCHAR(64),
    lease_id CHAR(36),
    lease_expires DOUBLE PRECISION,
    progress TEXT,
    progress_at DOUBLE PRECISION,
    cells_done INTEGER,
    cells_moved_at DOUBLE PRECISION,
    result TEXT,
    model {BLOB},
    upload_sha256 CHAR(64)
);
CREATE INDEX jobs_owner_status ON jobs (owner_id, status);
