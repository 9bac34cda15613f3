"""SQLAlchemy Core table objects matching the latest migration, for building queries.

The schema itself is created by the SQL files in ``migrations/``; these objects only
describe it (no ``create_all``), so the two must be kept in step.
"""
import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64)),
    sa.Column("token_sha256", sa.String(64)),
    sa.Column("created", sa.Float),
    sa.Column("disabled_at", sa.Float),  # set: every request with the user's token is 401
    sa.Column("token_changed", sa.Float),
    sa.Column("token_revoked", sa.Integer),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.Integer),
    sa.Column("name", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("public", sa.Integer),
    sa.Column("classes", sa.Text),  # JSON [{"id", "name", "description", "recordings"}]
    sa.Column("created", sa.Float),
    sa.Column("last_edited", sa.Float),
    sa.Column("size_bytes", sa.BigInteger),  # classes + name + description, for the quota (*_storage_sizes.sql)
)

lowlevel = sa.Table(  # one document per (recording, owner)
    "lowlevel", metadata,
    sa.Column("mbid", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255)),  # original key of a document imported without an MBID
    sa.Column("document", sa.LargeBinary),  # zlib-compressed JSON
    sa.Column("artist", sa.String(255)),
    sa.Column("size_bytes", sa.BigInteger),  # compressed size, counted against the owner's quota
    sa.Column("created", sa.Float),
)

bundles = sa.Table(  # features bundles, stored once per content
    "bundles", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("created", sa.Float),
)

dataset_recordings = sa.Table(  # which datasets name which recordings (visibility of documents)
    "dataset_recordings", metadata,
    sa.Column("dataset_id", sa.String(36), primary_key=True),
    sa.Column("mbid", sa.String(36), primary_key=True),
)

snapshots = sa.Table(
    "snapshots", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("dataset_id", sa.String(36)),
    sa.Column("data", sa.Text),  # JSON {"name", "description", "classes"}
    sa.Column("bundle_sha256", sa.String(64)),  # -> bundles.sha256
    sa.Column("content_sha256", sa.String(64)),  # of data + bundle: equal snapshots are reused
    sa.Column("created", sa.Float),
    sa.Column("size_bytes", sa.BigInteger),  # of data, for the quota (*_storage_sizes.sql)
)

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_id", sa.Integer),
    sa.Column("dataset_id", sa.String(36)),
    sa.Column("snapshot_id", sa.String(36)),  # NULL while 'preparing' (version 5)
    sa.Column("status", sa.String(16)),
    sa.Column("status_msg", sa.Text),
    sa.Column("eval_location", sa.String(16)),
    sa.Column("options", sa.Text),
    sa.Column("seed", sa.Integer),
    sa.Column("created", sa.Float),
    sa.Column("updated", sa.Float),
    sa.Column("runner_id", sa.String(36)),
    sa.Column("runner_name", sa.String(255)),
    sa.Column("runner_version", sa.String(64)),
    sa.Column("lease_id", sa.String(36)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("progress", sa.Text),
    sa.Column("progress_at", sa.Float),
    sa.Column("cells_done", sa.Integer),
    sa.Column("cells_moved_at", sa.Float),
    sa.Column("result", sa.Text),
    sa.Column("model", sa.LargeBinary),
    sa.Column("upload_sha256", sa.String(64)),
    sa.Column("stalled_at", sa.Float),
    sa.Column("stall_count", sa.Integer),
    # Version 5 (migrations/0005_background_builds.sql): the snapshot is built by abserver/builder.py.
    sa.Column("build_owner", sa.String(64)),  # the builder holding the build
    sa.Column("build_lease_expires", sa.Float),  # renewed while it builds; expired: another may take it
    sa.Column("build_attempts", sa.Integer),
    sa.Column("error_code", sa.String(64)),  # why a build failed (too_wide, missing_lowlevel, ...)
    sa.Column("stored_bytes", sa.BigInteger),  # result JSON + model, for the quota (*_storage_sizes.sql)
)

# Version 4 (migrations/0004_web_pages.sql): status history and the web pages' state.
job_events = sa.Table(
    "job_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.String(36)),
    sa.Column("at", sa.Float),
    sa.Column("kind", sa.String(16)),
    sa.Column("detail", sa.Text),  # JSON object or NULL
)

web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("created", sa.Float),
    sa.Column("expires", sa.Float),
)

web_login_failures = sa.Table(
    "web_login_failures", metadata,
    sa.Column("client", sa.String(64)),
    sa.Column("at", sa.Float),
)

web_secret = sa.Table(
    "web_secret", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("secret", sa.String(64)),
)

web_renders = sa.Table(
    "web_renders", metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("upload_sha256", sa.String(64)),
    sa.Column("data", sa.LargeBinary),
    sa.Column("created", sa.Float),
)
