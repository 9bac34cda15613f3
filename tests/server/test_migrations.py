"""Schema migrations: a fresh database and a version-1 database with data both reach the latest version."""
import json

import pytest
import sqlalchemy as sa

from abserver import migrations
from abserver.app import create_app
from abserver.db import make_engine

@pytest.fixture
def url(any_db_url):
    return any_db_url


def test_upgrade_from_version_1_keeps_data(url):
    engine = make_engine(url)
    assert migrations.upgrade(engine, target=1) == [1]
    assert migrations.current_version(engine) == 1
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (name, token_sha256, created) VALUES ('old', :h, 1)"), {"h": "0" * 64})
        uid = conn.execute(sa.text("SELECT id FROM users")).scalar()
        conn.execute(sa.text("INSERT INTO datasets VALUES ('d', :u, 'n', '', 1, '[]', 1, 1)"), {"u": uid})
        conn.execute(sa.text("INSERT INTO snapshots VALUES ('s', 'd', '{}', :b, :h, 1)"), {"b": b"x", "h": "0" * 64})
        conn.execute(sa.text("INSERT INTO jobs (id, owner_id, dataset_id, snapshot_id, status, eval_location, "
                             "options, seed, created, updated) VALUES ('j', :u, 'd', 's', 'running', 'remote', "
                             ":o, 42, 1, 1)"), {"u": uid, "o": json.dumps({})})
    assert migrations.upgrade(engine) == list(range(2, migrations.latest_version() + 1))
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, stall_count, stalled_at FROM jobs WHERE id = 'j'")).first()
    assert tuple(row) == ("running", 0, None)
    assert migrations.upgrade(engine) == [], "upgrading again is a no-op"
    create_app(url)  # the server accepts the upgraded schema


def test_server_refuses_an_old_schema_with_advice(url):
    engine = make_engine(url)
    migrations.upgrade(engine, target=1)
    with pytest.raises(RuntimeError, match="init-db"):
        create_app(url)


def test_newer_schema_than_known_is_refused(tmp_path):
    engine = make_engine("sqlite:///%s" % (tmp_path / "n.db"))
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (999)"))
    with pytest.raises(migrations.MigrationError, match="newer"):
        migrations.upgrade(engine)


def test_every_migration_file_is_numbered_in_sequence():
    versions = [v for v, _ in migrations.available()]
    assert versions == list(range(1, len(versions) + 1))


def test_upgrade_to_version_3_keeps_documents_per_owner_and_stores_bundles_once(url):
    """Version 3 re-keys documents by (mbid, owner), moves bundles into a table keyed by
    content and indexes the datasets' recordings; existing data survives."""
    engine = make_engine(url)
    migrations.upgrade(engine, target=2)
    mbid = "0f6c1f3e-4b8a-4d2e-9a57-2b7d0c6e4a11"
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (name, token_sha256, created) VALUES ('old', :h, 1)"), {"h": "0" * 64})
        uid = conn.execute(sa.text("SELECT id FROM users")).scalar()
        classes = json.dumps([{"id": "1", "name": "a", "description": "", "recordings": [mbid]}])
        conn.execute(sa.text("INSERT INTO datasets VALUES ('d', :u, 'n', '', 1, :c, 1, 1)"), {"u": uid, "c": classes})
        conn.execute(sa.text("INSERT INTO lowlevel VALUES (:m, :doc, 'artist', :u, 1)"),
                     {"m": mbid, "doc": b"compressed", "u": uid})
        for sid in ("s1", "s2", "s3"):
            bundle = b"bundle-B" if sid == "s3" else b"bundle-A"
            conn.execute(sa.text("INSERT INTO snapshots VALUES (:s, 'd', '{}', :b, :h, 1)"),
                         {"s": sid, "b": bundle, "h": ("b" if sid == "s3" else "a") * 64})
    assert migrations.upgrade(engine, target=3) == [3]
    with engine.connect() as conn:
        doc = conn.execute(sa.text("SELECT mbid, owner_id, document, artist, size_bytes, name FROM lowlevel")).first()
        assert (doc.mbid, doc.owner_id, bytes(doc.document), doc.artist, doc.size_bytes, doc.name) == \
            (mbid, uid, b"compressed", "artist", len(b"compressed"), None)
        stored = conn.execute(sa.text("SELECT sha256, data FROM bundles ORDER BY sha256")).fetchall()
        assert [(r.sha256, bytes(r.data)) for r in stored] == [("a" * 64, b"bundle-A"), ("b" * 64, b"bundle-B")]
        refs = conn.execute(sa.text("SELECT id, bundle_sha256 FROM snapshots ORDER BY id")).fetchall()
        # (CHAR columns come back blank-padded from PostgreSQL)
        assert [(r[0].strip(), r[1]) for r in refs] == [("s1", "a" * 64), ("s2", "a" * 64), ("s3", "b" * 64)]
        index = conn.execute(sa.text("SELECT dataset_id, mbid FROM dataset_recordings")).fetchall()
        assert [(r[0].strip(), r[1]) for r in index] == [("d", mbid)]
        user = conn.execute(sa.text("SELECT disabled_at, token_revoked FROM users")).first()
        assert tuple(user) == (None, 0)
    with engine.begin() as conn:  # the same recording may now hold another owner's document
        conn.execute(sa.text("INSERT INTO users (name, token_sha256, created) VALUES ('new', :h, 1)"), {"h": "1" * 64})
        other = conn.execute(sa.text("SELECT id FROM users WHERE name = 'new'")).scalar()
        conn.execute(sa.text("INSERT INTO lowlevel (mbid, owner_id, document, size_bytes, created) "
                             "VALUES (:m, :u, :d, 1, 2)"), {"m": mbid, "u": other, "d": b"x"})
    migrations.upgrade(engine)  # the versions after 3 too, before the server accepts it
    create_app(url)


def test_upgrade_to_version_5_lets_a_job_wait_without_snapshot_and_keeps_its_history(url):
    """Version 5 (background builds): jobs.snapshot_id becomes nullable (SQLite rebuilds the table
    with foreign keys off and checks them before committing); rows, indexes and the job_events
    references survive, and foreign keys are enforced again afterwards."""
    engine = make_engine(url)
    migrations.upgrade(engine, target=4)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (name, token_sha256, created) VALUES ('old', :h, 1)"), {"h": "0" * 64})
        uid = conn.execute(sa.text("SELECT id FROM users")).scalar()
        conn.execute(sa.text("INSERT INTO datasets VALUES ('d', :u, 'n', '', 1, '[]', 1, 1)"), {"u": uid})
        conn.execute(sa.text("INSERT INTO bundles VALUES (:h, :b, 1, 1)"), {"h": "0" * 64, "b": b"x"})
        conn.execute(sa.text("INSERT INTO snapshots (id, dataset_id, data, bundle_sha256, created) "
                             "VALUES ('s', 'd', '{}', :h, 1)"), {"h": "0" * 64})
        conn.execute(sa.text("INSERT INTO jobs (id, owner_id, dataset_id, snapshot_id, status, eval_location, "
                             "options, seed, created, updated) VALUES ('j', :u, 'd', 's', 'done', 'remote', "
                             "'{}', 42, 1, 1)"), {"u": uid})
        conn.execute(sa.text("INSERT INTO job_events (job_id, at, kind) VALUES ('j', 1, 'submitted')"))
    assert migrations.upgrade(engine, target=5) == [5]
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT status, snapshot_id, build_attempts, error_code FROM jobs")).first()
        assert (row.status, row.snapshot_id.strip(), row.build_attempts, row.error_code) == ("done", "s", 0, None)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM job_events WHERE job_id = 'j'")).scalar() == 1
        conn.execute(sa.text("INSERT INTO jobs (id, owner_id, dataset_id, snapshot_id, status, eval_location, "
                             "options, seed, created, updated) VALUES ('p', :u, 'd', NULL, 'preparing', 'remote', "
                             "'{}', 42, 2, 2)"), {"u": uid})
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("jobs")}
    assert {"jobs_owner_status", "jobs_status_created"} <= indexes
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO job_events (job_id, at, kind) VALUES ('nope', 1, 'submitted')"))
    migrations.upgrade(engine)
    create_app(url)


def test_storage_sizes_migration_measures_what_each_owner_stores(url):
    """The storage-sizes migration (version 5 here) keeps the sizes the storage quota sums beside the data; existing rows are
    measured by the migration, and the quota's usage of an upgraded owner is right."""
    from abserver.quota import usage

    version = next(v for v, path in migrations.available() if path.name.endswith("_storage_sizes.sql"))
    engine = make_engine(url)
    migrations.upgrade(engine, target=version - 1)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (name, token_sha256, created) VALUES ('old', :h, 1)"), {"h": "0" * 64})
        uid = conn.execute(sa.text("SELECT id FROM users")).scalar()
        conn.execute(sa.text("INSERT INTO datasets (id, owner_id, name, description, public, classes, created, "
                             "last_edited) VALUES ('d', :u, 'nm', 'desc', 1, '[1,2]', 1, 1)"), {"u": uid})
        conn.execute(sa.text("INSERT INTO bundles VALUES (:h, :b, 7, 1)"), {"h": "a" * 64, "b": b"bundle!"})
        conn.execute(sa.text("INSERT INTO snapshots (id, dataset_id, data, bundle_sha256, content_sha256, created) "
                             "VALUES ('s', 'd', '{\"x\": 1}', :h, :h, 1)"), {"h": "a" * 64})
        conn.execute(sa.text("INSERT INTO jobs (id, owner_id, dataset_id, snapshot_id, status, eval_location, "
                             "options, seed, created, updated, result, model) VALUES ('j', :u, 'd', 's', 'done', "
                             "'remote', '{}', 1, 1, 1, '{\"accuracy\": 50}', :m)"), {"u": uid, "m": b"12345"})
        conn.execute(sa.text("INSERT INTO lowlevel (mbid, owner_id, document, size_bytes, created) "
                             "VALUES ('m', :u, 'doc', 3, 1)"), {"u": uid})
    assert version in migrations.upgrade(engine)
    with engine.connect() as conn:
        used = usage(conn, uid)
    assert used._asdict() == {"documents": 3, "bundles": 7, "datasets": len("[1,2]nmdesc") + len('{"x": 1}'),
                              "results": len('{"accuracy": 50}') + 5}
