"""Lease expiry, resume by the same runner, and the stall rule, with second-scale timings.

The server runs with a 2 s lease and a 2 s stall time; tests poll with generous
deadlines for the state change instead of sleeping a fixed time and asserting.
"""
import time
import uuid

import pytest
import requests
from helpers.jobflow import claim, details, new_job, ping, plausible_result, upload

TIMING = ("--lease-seconds", "2", "--ping-interval", "1", "--stall-seconds", "2", "--spot-check-cells", "0")
DEADLINE = 60.0


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    from helpers.server import ServerProcess

    srv = ServerProcess(tmp_path_factory.mktemp("timed"), args=TIMING).start()
    token = srv.add_user("alice")
    dataset = srv.import_dataset(owner="alice")
    yield srv, token, dataset
    srv.stop()


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for: %s" % what)


def listed(srv, token):
    r = requests.get(srv.url("/datasets/evaluation/jobs?status=pending&location=remote"), headers=srv.auth(token))
    return [j["job_id"] for j in r.json()["jobs"]]


def test_expired_lease_goes_to_another_runner(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    first = claim(srv, token, job).json()
    assert job not in listed(srv, token)
    wait_for(lambda: job in listed(srv, token), "the lease to expire")
    assert details(srv, token, job)["status"] == "pending"
    second = claim(srv, token, job)
    assert second.status_code == 200 and second.json()["lease_id"] != first["lease_id"]
    r = ping(srv, token, job, first["lease_id"])
    assert r.status_code == 409 and r.json()["code"] == "lease_lost"
    r = upload(srv, token, job, first["lease_id"], plausible_result(details(srv, token, job)))
    assert r.status_code == 409 and r.json()["code"] == "lease_lost"
    r = claim(srv, token, job, runner_id=str(uuid.uuid4()), lease_id=first["lease_id"])
    assert r.status_code == 409 and r.json()["code"] == "already_claimed"


def test_same_runner_resumes_with_its_lease(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    runner = str(uuid.uuid4())
    first = claim(srv, token, job, runner_id=runner).json()
    again = claim(srv, token, job, runner_id=runner, lease_id=first["lease_id"]).json()
    assert again["resumed"] is True and again["lease_id"] == first["lease_id"]
    wait_for(lambda: job in listed(srv, token), "the lease to expire")
    back = claim(srv, token, job, runner_id=runner, lease_id=first["lease_id"])
    assert back.status_code == 200 and back.json()["resumed"] is True
    assert back.json()["lease_id"] == first["lease_id"]
    assert details(srv, token, job)["status"] == "running"


def test_late_ping_resumes_an_unclaimed_expired_lease(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    lease = claim(srv, token, job).json()["lease_id"]
    wait_for(lambda: job in listed(srv, token), "the lease to expire")
    r = ping(srv, token, job, lease, stage="downloading", cells_done=None, cells_total=None)
    assert r.status_code == 200 and r.json()["stalled"] is False
    assert details(srv, token, job)["status"] == "running"


def test_frozen_cells_flag_the_job_stalled_and_offer_it(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    lease = claim(srv, token, job).json()["lease_id"]
    assert ping(srv, token, job, lease, cells_done=1).json()["stalled"] is False

    def stalled():
        return ping(srv, token, job, lease, cells_done=1).json()["stalled"]

    wait_for(stalled, "the stall flag")
    shown = details(srv, token, job)
    assert shown["status"] == "pending" and shown["stalled"] is True
    assert shown["status_msg"].startswith("stalled")
    assert job in listed(srv, token)
    other = claim(srv, token, job)
    assert other.status_code == 200
    assert ping(srv, token, job, lease, cells_done=2).json()["code"] == "lease_lost"
    assert details(srv, token, job)["stalled"] is False


def test_stalled_job_runs_on_when_cells_move_again(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    lease = claim(srv, token, job).json()["lease_id"]
    ping(srv, token, job, lease, cells_done=1)
    wait_for(lambda: ping(srv, token, job, lease, cells_done=1).json()["stalled"], "the stall flag")
    r = ping(srv, token, job, lease, cells_done=2)
    assert r.status_code == 200 and r.json()["stalled"] is False
    shown = details(srv, token, job)
    assert shown["status"] == "running" and shown["stalled"] is False and shown["status_msg"] is None


def test_paused_runner_is_not_stalled(timed):
    srv, token, dataset = timed
    job = new_job(srv, token, dataset)
    lease = claim(srv, token, job).json()["lease_id"]
    ping(srv, token, job, lease, cells_done=1)
    start = time.monotonic()
    while time.monotonic() - start < 3.5:  # longer than --stall-seconds: a stall would have shown
        r = ping(srv, token, job, lease, stage="paused", cells_done=1)
        assert r.status_code == 200 and r.json()["stalled"] is False
        time.sleep(0.3)
    assert details(srv, token, job)["status"] == "running"
