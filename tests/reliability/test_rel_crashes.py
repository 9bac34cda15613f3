"""Crashes: kill -9 of the daemon (its whole process tree, as systemd does before a
restart) or of its training workers, at chosen stages of a real job, then a restart.

Every job must end with exactly one result on the server, equal to an undisturbed
run's (result JSON without the runner block, and the model file byte for byte), and
the runner must leave no job directory, temp file or partial download in work_dir.
Kill moments are random (seeded) within the chosen stage.  Short form: a handful of
kills; the long form (``-m long``) makes more than 50.
"""
import random

import pytest

from rel_harness import record
from rel_harness.daemon import Daemon
from rel_harness.jobwatch import comparable, server_job, server_model, wait_stage
from rel_harness.procs import wait_for
from rel_harness.server import AbServer

# AB's default C/gamma grid on three preprocessing sets: ~10 s of grid cells on a quiet
# 2-core machine, long enough to land two kills mid-grid, short enough for the short form.
GRID = ["--preprocessing", "basic", "lowlevel", "normalized"]
JOB_TIMEOUT = 600


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Server + owner + dataset, and the undisturbed run every crashed run must equal."""
    base = tmp_path_factory.mktemp("crash")
    srv = AbServer("sqlite:///%s" % (base / "abserver.db"), name="abserver-crash",
                   options=["--ping-interval", "1", "--lease-seconds", "20"]).start()
    srv.token = srv.add_user("alice")
    srv.dataset = srv.import_example("alice")
    job = srv.submit(srv.dataset, *GRID)
    d = Daemon(base / "baseline", srv.base_url, srv.token, name="daemon-baseline").start()
    try:
        wait_for(lambda: server_job(srv.base_url, srv.token, job)["status"] in ("done", "failed"),
                 JOB_TIMEOUT, interval=0.5, what="the undisturbed job")
    finally:
        d.stop()
    j = server_job(srv.base_url, srv.token, job)
    assert j["status"] == "done", j["status_msg"]
    srv.baseline = comparable(j["result"])
    srv.baseline_model = server_model(srv.base_url, srv.token, job)
    srv.base = base
    yield srv
    srv.stop()


def crash_run(bench, name, plan, seed):
    """Run one job under ``plan`` [(target, stage), ...]; record one case per landed kill."""
    rng = random.Random(seed)
    job = bench.submit(bench.dataset, *GRID)
    d = Daemon(bench.base / name, bench.base_url, bench.token, name="daemon-" + name).start()

    def finished():
        return server_job(bench.base_url, bench.token, job)["status"] in ("done", "failed", "canceled")

    landed = []
    try:
        for target, stage in plan:
            moment = wait_stage(d.work_dir, job, stage, JOB_TIMEOUT, rng, finished)
            if moment is False:
                break  # the job finished before this moment came
            if moment is None:
                continue  # the job is past this stage already: go on to the next planned kill
            if target == "daemon":
                d.kill9()
                landed.append((target, stage))
                d.start()
            elif target == "pool":
                if d.kill9_pool_child():
                    landed.append((target, stage))
            else:
                if d.kill9_workers():
                    landed.append((target, stage))
        wait_for(finished, JOB_TIMEOUT, interval=0.5, what="job %s to end" % job)
        wait_for(lambda: not d.leftovers(), 60, interval=0.5, what="work_dir to be cleaned")
    except Exception:
        # The cases below record what went wrong.
        pass
    final = server_job(bench.base_url, bench.token, job)
    model = server_model(bench.base_url, bench.token, job)
    leftovers = d.leftovers()
    alive = d.alive()
    output = d.output()
    d.stop()
    problems = []
    if final["status"] != "done":
        problems.append("job ended %s: %s" % (final["status"], final["status_msg"]))
    elif comparable(final["result"]) != bench.baseline:
        problems.append("result differs from the undisturbed run's")
    elif model != bench.baseline_model:
        problems.append("model file differs from the undisturbed run's")
    if leftovers:
        problems.append("left in work_dir: %s" % ", ".join(leftovers[:5]))
    if not alive:
        problems.append("daemon not running at the end")
    if "refused the result" in output:
        problems.append("the server refused an upload (a second, different result)")
    for i, (target, stage) in enumerate(landed or [("none", "-")]):
        label = {"download": "claim/download/start"}.get(stage, stage)
        with record.case("crashes", "%s: kill -9 %s during %s (#%d)" % (name, target, label, i + 1)) as c:
            c.data_lost = 1 if (problems and i == 0) else 0
            c.message = "; ".join(problems) if problems else "one result, equal to the undisturbed run"
            c.extra = {"job": job, "kills_in_job": len(landed)}
            assert not problems, c.message
    return landed


def test_kill_daemon_in_every_stage(bench):
    landed = crash_run(bench, "daemon-stages", [("daemon", "download"), ("daemon", "training"),
                                                ("daemon", "training"), ("daemon", "upload")], seed=1)
    assert len(landed) >= 3, "too few kills landed: %r" % landed


def test_kill_training_process(bench):  # the process train_worker
    landed = crash_run(bench, "worker-process", [("workers", "training")], seed=2)
    assert landed, "no worker kill landed"


@pytest.mark.long
def test_kill_one_pool_process(bench):
    landed = crash_run(bench, "pool-process", [("pool", "training"), ("pool", "training")], seed=3)
    assert landed, "no pool-process kill landed"


STAGES = ["download", "training", "training", "training", "upload", "any"]


@pytest.mark.long
@pytest.mark.parametrize("n", range(12))
def test_random_kills_long(bench, n):
    rng = random.Random(100 + n)
    plan = sorted([(rng.choice(["daemon", "daemon", "daemon", "pool"]), rng.choice(STAGES)) for _ in range(6)],
                  key=lambda p: STAGES.index(p[1]))
    plan = [(t, s) if not (t == "pool" and s in ("download", "upload")) else ("daemon", s)
            for t, s in plan]
    crash_run(bench, "random-%02d" % n, plan, seed=200 + n)
