"""Disk faults: work_dir on a size-limited tmpfs that fills up mid-job.

The job must fail or pause with a clear message (naming the full disk), the daemon
must stay up, nothing may be corrupted (a result on the server equals an undisturbed
run's, or there is none), and once space returns the runner must take and finish work
again without an operator.
"""
import re
import time

import pytest

from rel_harness import record
from rel_harness.daemon import Daemon
from rel_harness.jobwatch import comparable, local_state, server_job
from rel_harness.procs import wait_for
from rel_harness.server import AbServer

GRID = ["--c-values", "-1", "1", "3", "--gamma-values", "-5", "-3", "--preprocessing", "basic", "normalized"]
TIMEOUT = 600
CLEAR = ("No space left", "disk is full", "ENOSPC", "no space", "full")


@pytest.fixture
def bench(tmp_path, small_fs_factory):
    srv = AbServer("sqlite:///%s" % (tmp_path / "abserver.db"), name="abserver-disk",
                   options=["--ping-interval", "1", "--lease-seconds", "20"]).start()
    srv.token = srv.add_user("alice")
    srv.dataset = srv.import_example("alice")
    fs = small_fs_factory(48 << 20)
    d = Daemon(tmp_path / "d", srv.base_url, srv.token, name="daemon-disk", work_dir=fs.path / "work")
    yield srv, fs, d
    d.stop()
    srv.stop()


def _status(srv, job):
    return server_job(srv.base_url, srv.token, job)


def _ended(srv, job):
    return _status(srv, job)["status"] in ("done", "failed", "canceled")


def _judge(c, srv, d, job, reference=None):
    """Common checks after space came back: daemon up, job sane, next job completes."""
    problems = []
    j = _status(srv, job)
    c.extra["first_job"] = j["status"]
    if j["status"] == "failed" and not any(w in (j["status_msg"] or "") for w in CLEAR):
        problems.append("job failed without naming the full disk: %r" % j["status_msg"])
    if j["status"] == "done" and reference is not None and comparable(j["result"]) != reference:
        problems.append("result differs from an undisturbed run's (corrupted)")
    if not d.alive():
        problems.append("daemon exited (%s)" % d.proc.popen.returncode)
    said = [l.split(": ", 1)[-1] for l in d.output().splitlines()
            if "WARNING" in l or "ERROR" in l if any(w in l for w in CLEAR)]
    if not said:
        problems.append("the daemon never said the disk was full")
    c.message = ("%s; job %s" % (said[0], j["status"]) if said else j["status"]) if not problems \
        else "; ".join(problems)
    c.message = re.sub(r"/tmp/abr-smallfs-\w+", "<tmpfs>", c.message)
    c.extra["daemon_log_tail"] = d.output()[-1500:]
    return problems


def test_disk_fills_during_training(bench, baselines):
    srv, fs, d = bench
    job = srv.submit(srv.dataset, *GRID)
    d.start()
    with record.case("disk_faults", "work_dir fills up during training, space returns") as c:
        wait_for(lambda: local_state(d.work_dir, job).get("stage") == "training", TIMEOUT,
                 what="training to start")
        fs.fill(leave_bytes=0)
        # The job must fail or pause (or finish, if nothing more needed writing) ...
        try:
            wait_for(lambda: _ended(srv, job) or "No space" in d.output() or not d.alive(), 120,
                     what="the runner to notice the full disk")
        finally:
            time.sleep(3)  # let it react; then give the space back
            alive_when_full = d.alive()
            fs.release()
        c.extra["daemon_alive_while_full"] = alive_when_full
        wait_for(lambda: _ended(srv, job) or not d.alive(), TIMEOUT, what="the first job to end")
        problems = _judge(c, srv, d, job)
        if not alive_when_full:
            problems.append("daemon died while the disk was full")
        # ... and with space back, the runner works again.
        if d.alive():
            job2 = srv.submit(srv.dataset, *GRID)
            wait_for(lambda: _ended(srv, job2), TIMEOUT, what="a job after space returned")
            second = _status(srv, job2)
            if second["status"] != "done":
                problems.append("the next job did not complete: %s" % second["status_msg"])
            else:
                baselines.setdefault(tuple(GRID), comparable(second["result"]))
                first = _status(srv, job)
                if first["status"] == "done" and comparable(first["result"]) != comparable(second["result"]):
                    problems.append("the job that met the full disk has a different result (corrupted)")
        if problems:
            c.message = "; ".join(problems)
            c.data_lost = 0 if _status(srv, job)["status"] in ("done", "failed") else 1
        assert not problems, c.message


def test_disk_full_before_the_job(bench):
    srv, fs, d = bench
    d.start()
    wait_for(lambda: (d.work_dir / "runner_id").exists(), 60, what="the daemon to start")
    fs.fill(leave_bytes=0)
    job = srv.submit(srv.dataset, *GRID)
    with record.case("disk_faults", "work_dir already full when a job arrives, space returns") as c:
        try:
            wait_for(lambda: _status(srv, job)["status"] != "pending" or not d.alive() or
                     "No space" in d.output(), 60, what="the runner to try the job")
            time.sleep(3)
            alive_when_full = d.alive()
        finally:
            fs.release()
        wait_for(lambda: _ended(srv, job) or not d.alive(), TIMEOUT, what="the job to end")
        problems = _judge(c, srv, d, job)
        if not alive_when_full:
            problems.append("daemon died while the disk was full")
        if _status(srv, job)["status"] != "done" and d.alive():
            job2 = srv.submit(srv.dataset, *GRID)
            wait_for(lambda: _ended(srv, job2), TIMEOUT, what="a job after space returned")
            if _status(srv, job2)["status"] != "done":
                problems.append("the next job did not complete")
        if problems:
            c.message = "; ".join(problems)
        assert not problems, c.message
