"""The job pages know the 'preparing' state (issue 17 item 6): a submitted job shows as preparing
until a build worker has built its snapshot, then its history says so; a failed build shows its
code and reason."""
import re

import sqlalchemy as sa

from abserver import builder
from abserver.app import create_app
from helpers.web import in_process_owner, sign_in_client


def test_job_pages_show_preparing_then_built_and_a_failed_build_with_its_code(tmp_path):
    url, engine, token, uid, dataset = in_process_owner(tmp_path / "p.db")
    client = sign_in_client(create_app(url).test_client(), token)
    page = client.get("/datasets/%s/submit" % dataset).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/datasets/%s/submit" % dataset, data={
        "csrf_token": csrf, "c_values": "1", "gamma_values": "-3", "preprocessing": ["basic"], "seed": "42",
        "location": "remote"})
    assert r.status_code == 303, r.get_data(as_text=True)
    job = r.headers["Location"].rsplit("/", 1)[1]
    page = client.get("/jobs/%s" % job).get_data(as_text=True)
    assert "runners see it once its snapshot is prepared" in page
    assert '<span class="status preparing" id="job-status">preparing</span>' in page
    listing = client.get("/jobs").get_data(as_text=True)
    assert '<span class="status preparing">preparing</span>' in listing
    assert builder.build_queued(engine) == 1
    page = client.get("/jobs/%s" % job).get_data(as_text=True)
    assert '<span class="status pending" id="job-status">pending</span>' in page
    assert re.search(r'class="event built">built</span>: snapshot and features bundle ready', page)

    r = client.post("/datasets/%s/submit" % dataset, data={
        "csrf_token": csrf, "c_values": "1", "gamma_values": "-3", "preprocessing": ["basic"], "seed": "7",
        "location": "remote"})
    failing = r.headers["Location"].rsplit("/", 1)[1]
    with engine.begin() as conn:  # a document gone before the build: it cannot succeed
        conn.execute(sa.text("DELETE FROM lowlevel WHERE mbid = (SELECT MIN(mbid) FROM dataset_recordings "
                             "WHERE dataset_id = :d)"), {"d": dataset})
    assert builder.build_queued(engine) == 0
    page = client.get("/jobs/%s" % failing).get_data(as_text=True)
    assert '<span class="status failed" id="job-status">failed</span>' in page
    assert "missing_lowlevel: 1 recording(s) have no low-level document of yours" in page
