-- Version 4: what the owner's web pages (abserver/web) need.
-- job_events: each job's status history (submitted, claimed, pings, resumed, stalled,
-- done/failed/canceled), appended by abserver/jobs.py in the transaction that changes the job.
CREATE TABLE job_events (
    id {SERIAL_PK},
    job_id CHAR(36) NOT NULL REFERENCES jobs (id),
    at DOUBLE PRECISION NOT NULL,
    kind VARCHAR(16) NOT NULL,
    detail TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);
-- web_sessions: signed-in browsers; the cookie carries a random id, only its SHA-256 is
-- stored, so sign-out (deleting the row) revokes it everywhere.
CREATE TABLE web_sessions (
    id_sha256 CHAR(64) PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
-- web_login_failures: failed sign-ins per client address, for the sign-in rate limit.
CREATE TABLE web_login_failures (
    client VARCHAR(64) NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX web_login_failures_client ON web_login_failures (client, at);
-- web_secret: the key signing session cookies and CSRF tokens, shared by all workers.
CREATE TABLE web_secret (
    id INTEGER PRIMARY KEY,
    secret CHAR(64) NOT NULL
);
-- web_renders: plots and derived files of a result, computed once per upload.
CREATE TABLE web_renders (
    job_id CHAR(36) NOT NULL REFERENCES jobs (id),
    name VARCHAR(64) NOT NULL,
    upload_sha256 CHAR(64) NOT NULL,
    data {BLOB} NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, name)
);
