"""Version 4 (the web pages' tables) on a database that already has jobs: they keep working."""
import json

import pytest
import sqlalchemy as sa

from abserver import migrations
from abserver.app import create_app
from abserver.datasets import put_lowlevel
from abserver.db import make_engine
from abserver.jobs import submit
from abserver.users import add_user, user_id_by_name
from helpers.server import EXAMPLE_DATASET
from helpers.web import sign_in_client


@pytest.fixture
def url(any_db_url):
    return any_db_url


def test_jobs_from_before_version_4_show_on_the_pages(url):
    engine = make_engine(url)
    migrations.upgrade(engine, target=3)
    token = add_user(engine, "old")
    with engine.connect() as conn:
        uid = user_id_by_name(conn, "old")
    # Stored at version 3, in version 3's columns (today's importer writes columns added later).
    meta = json.loads((EXAMPLE_DATASET / "dataset.json").read_text())
    dataset = meta["id"]
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO datasets (id, owner_id, name, description, public, classes, created, "
                             "last_edited) VALUES (:d, :u, 'before v4', '', 0, :c, 1, 1)"),
                     {"d": dataset, "u": uid, "c": json.dumps(meta["classes"])})
        for mbid in sorted({m for c in meta["classes"] for m in c["recordings"]}):
            put_lowlevel(conn, mbid, json.loads((EXAMPLE_DATASET / "lowlevel" / ("%s.json" % mbid)).read_text()), uid)
            conn.execute(sa.text("INSERT INTO dataset_recordings VALUES (:d, :m)"), {"d": dataset, "m": mbid})
    assert migrations.upgrade(engine) == list(range(4, migrations.latest_version() + 1))
    job = submit(engine, dataset, uid, "remote", {"c_values": [1], "gamma_values": [1]}, 1)
    with engine.begin() as conn:  # a job submitted before version 4 has no history: forget this one's
        conn.execute(sa.text("DELETE FROM job_events"))
    client = create_app(url).test_client()
    sign_in_client(client, token)
    page = client.get("/jobs/%s" % job).get_data(as_text=True)
    assert "before v4" in page and "No events recorded" in page
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM web_secret")).scalar() == 1, "one shared signing key"
