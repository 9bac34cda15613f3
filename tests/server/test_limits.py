"""Issue 17's cost ceilings as named regressions: wide bundles refused, snapshots stored once."""
import json
import uuid

import requests
import sqlalchemy as sa
from helpers.server import EXAMPLE_DATASET, ServerProcess

from abserver.datasets import MAX_BUNDLE_COLUMNS
from abserver.db import make_engine


def _put(srv, token, doc):
    mbid = str(uuid.uuid4())
    r = requests.put(srv.url("/low-level/%s" % mbid), json=doc, headers=srv.auth(token))
    assert r.status_code == 200, r.text
    return mbid


def test_documents_with_many_distinct_descriptors_make_no_dense_giant(tmp_path):
    """Thirty documents of 50,000 distinct descriptors each grew the server by 1.2 GB; now each
    document is bounded and a snapshot wider than MAX_BUNDLE_COLUMNS is refused naming it (by the
    build worker, which fails the job with code too_wide: the width is known once it is built)."""
    with ServerProcess(tmp_path) as srv:
        token = srv.add_user("wide")
        per_doc = MAX_BUNDLE_COLUMNS // 3
        mbids = [_put(srv, token, {"lowlevel": {"d%d_%05d" % (k, i): 1.0 for i in range(per_doc)}})
                 for k in range(4)]
        body = {"name": "wide", "classes": [{"name": "a", "recordings": mbids[:2]},
                                            {"name": "b", "recordings": mbids[2:]}]}
        dataset = requests.post(srv.url("/datasets"), json=body, headers=srv.auth(token)).json()["dataset_id"]
        r = requests.post(srv.url("/datasets/%s/evaluate" % dataset), json={}, headers=srv.auth(token))
        assert r.status_code == 202, r.text
        job = srv.wait_built(token, r.json()["job_id"])
        assert job["status"] == "failed" and job["error_code"] == "too_wide", job
        assert sorted(mbids)[3] in job["status_msg"], "the recording that crosses the limit is named"


def test_equal_snapshots_and_bundles_are_stored_once(tmp_path):
    with ServerProcess(tmp_path) as srv:
        token = srv.add_user("dedup")
        dataset = srv.import_dataset(owner="dedup")
        jobs = [srv.submit(dataset, "--c-values", str(c)) for c in (1, 3, 5)]
        shown = [requests.get(srv.url("/datasets/evaluation/jobs/%s" % j), headers=srv.auth(token)).json()
                 for j in jobs]
        assert len({j["snapshot_id"] for j in shown}) == 1, "an unchanged dataset reuses its snapshot"
        doc = json.loads(next((EXAMPLE_DATASET / "lowlevel").glob("*.json")).read_text())
        doc["lowlevel"]["changed"] = {"mean": 1.0}
        mbid = shown[0]["dataset"]["classes"][0]["recordings"][0]
        requests.put(srv.url("/low-level/%s" % mbid), json=doc, headers=srv.auth(token))
        changed = srv.submit(dataset, "--c-values", "1")
        snap = requests.get(srv.url("/datasets/evaluation/jobs/%s" % changed), headers=srv.auth(token)).json()
        assert snap["snapshot_id"] != shown[0]["snapshot_id"], "a changed document makes a new snapshot"
        with make_engine(srv.db_url).connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar() == 2
            assert conn.execute(sa.text("SELECT COUNT(*) FROM bundles")).scalar() == 2
