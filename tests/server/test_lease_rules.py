"""The pure lease and stall rules (abserver/leases.py), one behaviour per test."""
from types import SimpleNamespace

import pytest

from abserver.errors import ApiError
from abserver.leases import decide_claim, decide_ping, effective_status

RUNNER, OTHER, LEASE = "r-1", "r-2", "l-1"


def job(**kw):
    base = dict(status="running", eval_location="remote", lease_id=LEASE, runner_id=RUNNER, lease_expires=100.0,
                cells_done=3, cells_moved_at=50.0, stalled_at=None)
    base.update(kw)
    return SimpleNamespace(**base)


def code(fn, *args):
    with pytest.raises(ApiError) as err:
        fn(*args)
    return err.value.status, err.value.code


def test_pending_job_gets_a_new_lease():
    assert decide_claim(job(status="pending", lease_id=None), OTHER, None, 60.0) not in (None, LEASE)


def test_held_lease_refuses_others_until_it_expires():
    assert code(decide_claim, job(), OTHER, None, 60.0) == (409, "already_claimed")
    assert code(decide_claim, job(), OTHER, LEASE, 60.0) == (409, "already_claimed"), "a lease is per runner"
    assert decide_claim(job(), OTHER, None, 101.0) != LEASE
    assert effective_status(job(), 101.0) == "pending" and effective_status(job(), 99.0) == "running"


def test_holder_resumes_with_its_lease_even_after_expiry():
    assert decide_claim(job(), RUNNER, LEASE, 60.0) == LEASE
    assert decide_claim(job(), RUNNER, LEASE, 500.0) == LEASE
    assert decide_claim(job(status="pending", stalled_at=70.0), RUNNER, LEASE, 80.0) == LEASE


def test_finished_and_local_jobs_cannot_be_claimed():
    for status in ("done", "failed", "canceled"):
        assert code(decide_claim, job(status=status), RUNNER, LEASE, 60.0) == (409, "job_finished")
    assert code(decide_claim, job(eval_location="local", status="pending"), RUNNER, None, 60.0) == (409, "not_remote")


def test_ping_renews_and_notes_moving_cells():
    d = decide_ping(job(), LEASE, "training", 4, 60.0, stall_seconds=30)
    assert (d.status, d.renew, d.stalled, d.cells_moved) == ("running", True, False, True)


def test_frozen_cells_stall_only_after_the_stall_time_and_only_while_training():
    assert decide_ping(job(), LEASE, "training", 3, 79.0, stall_seconds=30).stalled is False
    d = decide_ping(job(), LEASE, "training", 3, 80.0, stall_seconds=30)
    assert (d.status, d.renew, d.stalled) == ("pending", False, True)
    for stage in ("paused", "downloading", "uploading", "claimed"):
        assert decide_ping(job(), LEASE, stage, 3, 1000.0, stall_seconds=30).stalled is False


def test_ping_from_a_lost_lease_and_on_finished_jobs():
    assert code(decide_ping, job(), "other", "training", 3, 60.0, 30) == (409, "lease_lost")
    assert code(decide_ping, job(status="failed"), LEASE, "training", 3, 60.0, 30) == (409, "job_finished")
    done = decide_ping(job(status="done"), LEASE, "uploading", 3, 60.0, 30)
    assert (done.status, done.renew) == ("done", False), "its upload was stored; the runner may retry it"
    assert code(decide_ping, job(status="done"), "other", "training", 3, 60.0, 30) == (409, "lease_lost")
    assert decide_ping(job(status="canceled"), "any", "training", 3, 60.0, 30).status == "canceled"
