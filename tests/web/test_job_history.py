"""The job page's status history stays readable for long jobs: every transition, the latest pings."""
import uuid

from abserver import builder
from abserver.app import create_app
from helpers.web import in_process_owner, sign_in_client


def test_a_long_job_keeps_its_claim_in_view(tmp_path):
    url, engine, token, uid, dataset = in_process_owner(tmp_path / "h.db")
    client = create_app(url).test_client()
    auth = {"Authorization": "Token " + token}
    job = client.post("/api/v1/datasets/%s/evaluate" % dataset, json={}, headers=auth).get_json()["job_id"]
    assert builder.build_queued(engine) == 1  # the build worker's work, in this process
    claim = {"runner_id": str(uuid.uuid4()), "runner_name": "long-runner", "runner_version": "1"}
    lease = client.post("/api/v1/datasets/evaluation/jobs/%s/claim" % job, json=claim, headers=auth
                        ).get_json()["lease_id"]
    for cells in range(130):
        r = client.post("/api/v1/datasets/evaluation/jobs/%s/ping" % job, headers=auth, json={
            "lease_id": lease, "runner_name": "long-runner", "runner_version": "1", "stage": "training",
            "cells_done": cells, "cells_total": 720, "eta_seconds": 1000 - cells})
        assert r.status_code == 200
    sign_in_client(client, token)
    page = client.get("/jobs/%s" % job).get_data(as_text=True)
    history = page[page.index('id="job-history"'):]
    assert "submitted" in history and "claimed</span> by long-runner" in history
    assert history.count('class="event ping"') == 100 and "30 earlier pings not shown" in page
    assert "129/720 cells" in history and "29/720 cells" not in history.replace("129/720", "")
