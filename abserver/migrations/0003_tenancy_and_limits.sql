-- Version 3: documents per owner, bundles stored once by content, token life cycle, quotas.
-- (1) A low-level document belongs to the user who stored it; the same MBID may hold
--     one document per owner (AcousticBrainz kept several submissions per MBID), so the
--     key becomes (mbid, owner_id). 'name' is the original key of a document imported
--     without an MBID (class folders, groundtruth ids); 'descriptors' counts its leaves.
--     Version-2 documents without an owner (none are written by any released code path)
--     cannot be attributed and are dropped.
CREATE TABLE lowlevel_v3 (
    mbid CHAR(36) NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    name VARCHAR(255),
    document {BLOB} NOT NULL,
    artist VARCHAR(255),
    size_bytes BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (mbid, owner_id)
);
INSERT INTO lowlevel_v3 (mbid, owner_id, name, document, artist, size_bytes, created)
    SELECT mbid, owner_id, NULL, document, artist, LENGTH(document), created FROM lowlevel
    WHERE owner_id IS NOT NULL;
DROP TABLE lowlevel;
ALTER TABLE lowlevel_v3 RENAME TO lowlevel;
CREATE INDEX lowlevel_owner ON lowlevel (owner_id);
-- (2) Features bundles stored once per content (their SHA-256); snapshots refer to them.
CREATE TABLE bundles (
    sha256 CHAR(64) PRIMARY KEY,
    data {BLOB} NOT NULL,
    size_bytes BIGINT NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
INSERT INTO bundles (sha256, data, size_bytes, created)
    SELECT s.bundle_sha256, s.bundle, LENGTH(s.bundle), s.created FROM snapshots s
    WHERE s.id = (SELECT MIN(s2.id) FROM snapshots s2 WHERE s2.bundle_sha256 = s.bundle_sha256);
ALTER TABLE snapshots ADD COLUMN content_sha256 CHAR(64);
ALTER TABLE snapshots DROP COLUMN bundle;
CREATE INDEX snapshots_content ON snapshots (dataset_id, content_sha256);
-- (3) Token life cycle: a rotated or revoked token stops working at once; users can be
--     disabled (their tokens answer 401). A revoked token's hash is replaced by the hash
--     of a secret nobody was shown.
ALTER TABLE users ADD COLUMN disabled_at DOUBLE PRECISION;
ALTER TABLE users ADD COLUMN token_changed DOUBLE PRECISION;
ALTER TABLE users ADD COLUMN token_revoked INTEGER NOT NULL DEFAULT 0;
-- (4) Which datasets name which recordings: '/low-level' serves another owner's document
--     only when that owner names the recording in a public dataset. Filled for existing
--     datasets by the Python step of version 3 (abserver/migrations.py).
CREATE TABLE dataset_recordings (
    dataset_id CHAR(36) NOT NULL REFERENCES datasets (id),
    mbid CHAR(36) NOT NULL,
    PRIMARY KEY (dataset_id, mbid)
);
CREATE INDEX dataset_recordings_mbid ON dataset_recordings (mbid);
