"""Schema migrations: a fresh database and a version-1 database with data both reach the latest version."""
import json

import pytest
import sqlalchemy as sa

from abserver import migrations
from abserver.app import create_app
from abserver.db import make_engine

DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DB_PARAMS)
def url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "m.db")
    return request.getfixturevalue("postgres_url")


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
