"""Version 4 (the web pages' tables) on a database that already has jobs: they keep working."""
import re

import pytest
import sqlalchemy as sa

from abserver import migrations
from abserver.app import create_app
from abserver.datasets import import_dataset_dir
from abserver.db import make_engine
from abserver.jobs import submit
from abserver.users import add_user, user_id_by_name
from helpers.server import EXAMPLE_DATASET

DB_PARAMS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DB_PARAMS)
def url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "m.db")
    return request.getfixturevalue("postgres_url")


def test_jobs_from_before_version_4_show_on_the_pages(url):
    engine = make_engine(url)
    migrations.upgrade(engine, target=3)
    token = add_user(engine, "old")
    with engine.connect() as conn:
        uid = user_id_by_name(conn, "old")
    dataset = import_dataset_dir(engine, str(EXAMPLE_DATASET), uid).dataset_id  # stored at version 3
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE datasets SET name = 'before v4' WHERE id = :d"), {"d": dataset})
    assert migrations.upgrade(engine) == list(range(4, migrations.latest_version() + 1))
    job = submit(engine, dataset, uid, "remote", {"c_values": [1], "gamma_values": [1]}, 1)
    with engine.begin() as conn:  # a job submitted before version 4 has no history: forget this one's
        conn.execute(sa.text("DELETE FROM job_events"))
    client = create_app(url).test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
    page = client.get("/jobs/%s" % job).get_data(as_text=True)
    assert "before v4" in page and "No events recorded" in page
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM web_secret")).scalar() == 1, "one shared signing key"
