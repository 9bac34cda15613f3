"""Concurrent claims have exactly one winner and concurrent pings lose no update, on both databases,
under the development server and under gunicorn with several worker processes."""
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers.jobflow import claim, details, ping
from helpers.server import EXAMPLE_DATASET, ServerProcess

CLAIMERS = 100
RUNNERS, PINGS = 20, 10

SETUPS = [
    ("sqlite", 0),
    ("sqlite", 2),
    pytest.param(("postgres", 0), marks=pytest.mark.postgres, id="postgres-dev"),
    pytest.param(("postgres", 2), marks=pytest.mark.postgres, id="postgres-gunicorn2"),
]
SETUPS[:2] = [pytest.param(("sqlite", 0), id="sqlite-dev"), pytest.param(("sqlite", 2), id="sqlite-gunicorn2")]


@pytest.fixture(scope="module", params=SETUPS)
def busy(request, tmp_path_factory):
    db, workers = request.param
    tmp = tmp_path_factory.mktemp("conc")
    url = ("sqlite:///%s" % (tmp / "c.db")) if db == "sqlite" else \
        request.getfixturevalue("postgres_cluster").new_database()
    srv = ServerProcess(tmp, db_url=url, args=("--spot-check-cells", "0"), gunicorn_workers=workers,
                        gunicorn_threads=8).start()
    token = srv.add_user("alice")
    srv.import_dataset(owner="alice")
    yield srv, token
    srv.stop()


def tiny_job(srv, token) -> str:
    """A job on a 2 × 2 dataset made over the API from already-imported documents (fast to snapshot)."""
    mbids = sorted(p.stem for p in (EXAMPLE_DATASET / "lowlevel").glob("*.json"))[:4]
    data = {"name": "tiny", "classes": [{"name": "a", "recordings": mbids[:2]}, {"name": "b", "recordings": mbids[2:]}]}
    dataset = requests.post(srv.url("/datasets"), json=data, headers=srv.auth(token)).json()["dataset_id"]
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset), json={}, headers=srv.auth(token))
    assert r.status_code == 202, r.text
    assert srv.wait_built(token, r.json()["job_id"])["status"] == "pending"
    return r.json()["job_id"]


def test_hundred_concurrent_claims_have_one_winner(busy):
    srv, token = busy
    job = tiny_job(srv, token)
    barrier = threading.Barrier(CLAIMERS)

    def one(_):
        session = requests.Session()
        body = {"runner_id": str(uuid.uuid4()), "runner_name": "r", "runner_version": "1"}
        barrier.wait(timeout=120)
        r = session.post(srv.url("/datasets/evaluation/jobs/%s/claim" % job), json=body,
                         headers=srv.auth(token), timeout=120)
        return r.status_code, r.json().get("code"), r.json().get("lease_id")

    with ThreadPoolExecutor(max_workers=CLAIMERS) as pool:
        outcomes = list(pool.map(one, range(CLAIMERS)))
    winners = [o for o in outcomes if o[0] == 200]
    assert len(winners) == 1, outcomes
    assert sorted(set((s, c) for s, c, _ in outcomes if s != 200)) == [(409, "already_claimed")]
    shown = details(srv, token, job)
    assert shown["status"] == "running"
    # the winner really holds the lease
    assert ping(srv, token, job, winners[0][2]).status_code == 200


def test_concurrent_pings_lose_no_update(busy):
    srv, token = busy
    jobs = [tiny_job(srv, token) for _ in range(RUNNERS)]
    leases = [claim(srv, token, job).json()["lease_id"] for job in jobs]
    barrier = threading.Barrier(RUNNERS)

    def runner(i):
        barrier.wait(timeout=120)
        codes = []
        for cells in range(1, PINGS + 1):
            codes.append(ping(srv, token, jobs[i], leases[i], cells_done=cells, cells_total=PINGS).status_code)
        return codes

    with ThreadPoolExecutor(max_workers=RUNNERS) as pool:
        results = list(pool.map(runner, range(RUNNERS)))
    assert all(code == 200 for codes in results for code in codes), results
    for job in jobs:
        assert details(srv, token, job)["progress"]["cells_done"] == PINGS
