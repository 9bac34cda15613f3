"""Faults, each with the real daemon against the real job server (SQLite): server down
at start and mid-job, 500s and timeouts, lost answers, a truncated and a corrupted
download (these through ``faultproxy.py``, a small real HTTP proxy process that injects
them), kill -9 and SIGTERM mid-training with resume from the checkpoint, cancel from the
server, a rejected token, and a dataset with NaN values. After each, the server holds
exactly the expected outcome: one result (or one failure) for the job, nothing lost.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from runner.conftest import (GRID_MEDIUM, GRID_SMALL, ROOT, free_port, held_state, job_details,
                                   progress_of, server_root, wait_for, wait_job_status)


def same_result(a, b):
    keys = ("accuracy", "confusion_matrix", "parameters", "combinations", "seed")
    return {k: a[k] for k in keys} == {k: b[k] for k in keys}


def pgid_gone(pgid):
    """No live (non-zombie) process left in the group: orphans may wait for a reaper here."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return False
    return True


class Proxy:
    """The fault injector as a process; ``rules(...)`` replaces its rules."""

    def __init__(self, tmp, upstream):
        self.port_file = os.path.join(tmp, "proxy.port")
        self.rules_file = os.path.join(tmp, "proxy.rules")
        self.log_file = os.path.join(tmp, "proxy.log")
        self.rules([])
        open(self.log_file, "w").close()
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "runner", "faultproxy.py"),
                                      upstream, self.port_file, self.rules_file, self.log_file])
        port = wait_for(lambda: os.path.exists(self.port_file) and open(self.port_file).read(), 30,
                        what="the fault proxy's port")
        self.url = "http://127.0.0.1:%s" % port

    def rules(self, rules):
        with open(self.rules_file + ".new", "w") as f:
            json.dump(rules, f)
        os.replace(self.rules_file + ".new", self.rules_file)

    def log(self):
        with open(self.log_file) as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def proxy_factory(tmp_path):
    made = []

    def make(upstream):
        p = Proxy(str(tmp_path), upstream)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def test_server_down_at_start(server_factory, daemon_factory, tmp_path):
    from helpers.server import EXAMPLE_DATASET, ServerProcess
    port = free_port()
    srv = ServerProcess(tmp_path / "srv", args=["--listen", "127.0.0.1:%d" % port, "--ping-interval", "1"])
    srv.admin("init-db")
    token = srv.add_user("alice")
    job = srv.submit(srv.import_dataset(EXAMPLE_DATASET, owner="alice"), *GRID_SMALL)
    d = daemon_factory({"server_url": "http://127.0.0.1:%d" % port}, token=token).start()
    d.wait_log("cannot reach http://127.0.0.1:%d" % port)
    try:
        srv.start()
        wait_job_status(srv, token, job, "done")
        d.wait_log("answers again")
    finally:
        srv.stop()
    # Up to "answers again": stopping the server afterwards is a new outage the daemon may see.
    outage = d.current_output().split("answers again")[0]
    warned = [l for l in outage.splitlines() if "WARNING" in l and "cannot reach" in l]
    assert len(warned) == 1, warned  # logged once per change of state (the retries are debug lines)
    d.assert_token_never_shown()


def test_server_down_mid_job(daemon_factory, tmp_path):
    from helpers.server import EXAMPLE_DATASET, ServerProcess
    port = free_port()
    args = ["--listen", "127.0.0.1:%d" % port, "--ping-interval", "1"]
    srv = ServerProcess(tmp_path / "srv", args=args).start()
    try:
        token = srv.add_user("alice")
        job = srv.submit(srv.import_dataset(EXAMPLE_DATASET, owner="alice"), *GRID_SMALL)
        d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
        d.wait_log("training job %s" % job)
        srv.stop()  # pings fail, training goes on, the upload waits
        d.wait_log("status ping failed")
        d.wait_log("uploading the result for job %s failed" % job)
        srv = ServerProcess(tmp_path / "srv", args=args).start()  # same database, same port
        details = wait_job_status(srv, token, job, "done")
        assert details["result"]["dataset"]["n_recordings"] == 60
        d.wait_log("finished: accuracy")
        assert d.proc.poll() is None
    finally:
        srv.stop()
    d.assert_token_never_shown()


def test_500s_timeouts_and_lost_answers(owner, daemon_factory, proxy_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    proxy = proxy_factory(server_root(srv))
    proxy.rules([
        {"path": "/datasets/evaluation/jobs", "method": "GET", "action": "500", "count": 2},
        {"path": "/claim", "action": "timeout", "count": 1},
        {"path": "/ping", "action": "500", "count": 2},
        {"path": "/result", "action": "500", "count": 1},
        {"path": "/result", "action": "lose_answer", "count": 1},  # stored, but the runner never hears it
    ])
    d = daemon_factory({"server_url": proxy.url, "request_timeout": 3}, token=token).start()
    details = wait_job_status(srv, token, job, "done")
    d.wait_log("finished: accuracy")
    log = proxy.log()
    assert "500/injected" in log and "timeout/injected" in log and "/lose_answer" in log
    # The retried upload of the same result was acknowledged as already stored (200), not stored twice.
    uploads = [l for l in log.splitlines() if l.startswith("PUT ")]
    assert uploads[-1].endswith("-> 200"), uploads
    assert "already on the server" in d.current_output()
    assert details["result"]["accuracy"] > 0
    d.assert_token_never_shown()


def test_truncated_and_corrupted_download(owner, daemon_factory, proxy_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    proxy = proxy_factory(server_root(srv))
    proxy.rules([{"path": "/features", "action": "truncate", "count": 1},
                 {"path": "/features", "action": "corrupt", "count": 1}])
    d = daemon_factory({"server_url": proxy.url}, token=token).start()
    wait_job_status(srv, token, job, "done")
    out = d.current_output()
    assert "connection broke" in out or "will resume" in out
    assert "SHA-256 mismatch" in out
    features = [l for l in proxy.log().splitlines() if "/features" in l]
    assert features[0].endswith("/truncate") and features[1].endswith("/corrupt"), features
    assert "206" in features[1], "the second request resumes with Range"
    d.assert_token_never_shown()


def _wait_mid_training(d, job, at_least=0.15):
    def mid():
        p = progress_of(d.work_dir, job)
        total = p.get("cells_total") or 0
        return total and at_least * total <= (p.get("cells_done") or 0) < 0.8 * total
    wait_for(mid, 300, interval=0.05, what="training to be under way")


def test_kill_9_mid_training_resumes_from_checkpoint_with_same_result(owner, daemon_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_MEDIUM)
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    _wait_mid_training(d, job)
    pgid = held_state(d.work_dir, job)["worker_pgid"]
    d.proc.kill()  # kill -9 of the daemon
    d.wait()
    wait_for(lambda: pgid_gone(pgid), 60, what="the training processes to die with the daemon")
    assert job_details(srv, token, job)["status"] == "running"
    d.start()
    d.wait_log("resuming job %s" % job)
    details = wait_job_status(srv, token, job, "done")
    second_run = d.current_output()
    # progress lines: "43% ETA 12 min (620/1440) 1f3c2a4b [job_id=… stage=training …]"
    first_cells = [re.search(r"\((\d+)/(\d+)\) %s" % job[:8], l) for l in second_run.splitlines()
                   if "job_id=%s" % job in l]
    first_cells = [m for m in first_cells if m]
    assert first_cells and int(first_cells[0].group(1)) > 0, \
        "the restarted run did not start from the checkpoint: %s" % first_cells[:1]
    # The same job, uninterrupted, gives the same result.
    again = srv.submit(dataset, *GRID_MEDIUM)
    reference = wait_job_status(srv, token, again, "done")
    assert same_result(details["result"], reference["result"])
    d.assert_token_never_shown()


def test_sigterm_keeps_job_and_restart_finishes_it(owner, daemon_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_MEDIUM)
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    _wait_mid_training(d, job)
    pgid = held_state(d.work_dir, job)["worker_pgid"]
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=60) == 0
    stop_seconds = time.monotonic() - started
    assert stop_seconds < 30, "SIGTERM took %.1f s (the unit's TimeoutStopSec is 30)" % stop_seconds
    assert pgid_gone(pgid)
    assert "keeps its checkpoint" in d.current_output()
    assert job_details(srv, token, job)["status"] == "running"  # not failed
    assert os.path.exists(os.path.join(d.work_dir, "jobs", job, "checkpoint"))
    d.start()
    wait_job_status(srv, token, job, "done")
    print("SIGTERM to exit: %.1f s" % stop_seconds)
    d.assert_token_never_shown()


def test_cancel_from_server_then_next_job(owner, daemon_factory):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_MEDIUM)
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    _wait_mid_training(d, job, at_least=0.01)
    pgid = held_state(d.work_dir, job)["worker_pgid"]
    r = requests.post(srv.url("/datasets/evaluation/jobs/%s/cancel" % job), headers=srv.auth(token), timeout=30)
    assert r.status_code == 200
    d.wait_log("job %s canceled (by the owner)" % job)
    wait_for(lambda: pgid_gone(pgid), 60, what="training processes stopped")
    assert not os.path.exists(os.path.join(d.work_dir, "jobs", job))
    assert job_details(srv, token, job)["status"] == "canceled"
    following = srv.submit(dataset, *GRID_SMALL)
    wait_job_status(srv, token, following, "done")
    assert job_details(srv, token, job)["status"] == "canceled"


def test_token_rejected_logged_once_and_daemon_stays(owner, daemon_factory):
    srv, token, dataset = owner
    srv.submit(dataset, *GRID_SMALL)
    bad = "wrong-token-5c2e9b0d1a"
    d = daemon_factory({"server_url": server_root(srv), "poll_interval": 1}, token=bad).start()
    d.wait_log("token rejected by %s" % server_root(srv))
    assert d.proc.poll() is None
    # SIGHUP with the right token: picked up at once.
    d.set_token(token)
    d.signal(signal.SIGHUP)
    d.wait_log("finished: accuracy")
    assert d.current_output().count("token rejected") == 1
    assert bad not in d.output() and token not in d.output()


def _dataset_with_nan(tmp_path):
    """A copy of the sample dataset where one recording (under a new MBID, so the shared
    documents of the original stay clean) has a NaN descriptor, as a broken extractor writes."""
    import uuid
    from helpers.server import EXAMPLE_DATASET
    dest = tmp_path / "nan-dataset"
    shutil.copytree(str(EXAMPLE_DATASET), str(dest))
    old = sorted(os.listdir(str(dest / "lowlevel")))[0][:-5]
    new = str(uuid.uuid4())
    with open(str(dest / "dataset.json")) as f:
        ds = json.load(f)
    ds["name"] = "with-nan"
    for cls in ds["classes"]:
        cls["recordings"] = [new if m == old else m for m in cls["recordings"]]
    with open(str(dest / "dataset.json"), "w") as f:
        json.dump(ds, f)
    with open(str(dest / "artists.json")) as f:
        artists = json.load(f)
    artists[new] = artists.pop(old, None)
    with open(str(dest / "artists.json"), "w") as f:
        json.dump(artists, f)
    with open(str(dest / "lowlevel" / (old + ".json"))) as f:
        doc = json.load(f)
    os.unlink(str(dest / "lowlevel" / (old + ".json")))
    doc["lowlevel"]["spectral_centroid"]["mean"] = float("nan")
    with open(str(dest / "lowlevel" / (new + ".json")), "w") as f:
        json.dump(doc, f)  # writes the NaN token
    return str(dest), new


def test_dataset_with_nan_fails_job_and_daemon_carries_on(owner, daemon_factory, tmp_path):
    srv, token, dataset = owner
    nan_dir, mbid = _dataset_with_nan(tmp_path)
    bad = srv.submit(srv.import_dataset(nan_dir, owner="alice"), *GRID_SMALL)
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    details = wait_job_status(srv, token, bad, "failed")
    assert mbid in details["status_msg"] and "spectral_centroid" in details["status_msg"], details["status_msg"]
    d.wait_log("job %s failed" % bad)
    good = srv.submit(dataset, *GRID_SMALL)
    wait_job_status(srv, token, good, "done")
    assert d.proc.poll() is None
    print("NaN job failed with: %s" % details["status_msg"])


def test_training_process_killed_restarts_from_checkpoint(owner, daemon_factory):
    """The OOM killer or an administrator kills the training process, not the daemon."""
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_MEDIUM)
    d = daemon_factory({"server_url": server_root(srv)}, token=token).start()
    _wait_mid_training(d, job)
    os.kill(held_state(d.work_dir, job)["worker_pgid"], signal.SIGKILL)
    d.wait_log("restarting it from the checkpoint (attempt 2 of 3)")
    wait_job_status(srv, token, job, "done")
    assert d.proc.poll() is None


def test_server_with_only_acousticbrainz_api(owner, daemon_factory, proxy_factory):
    """No claim/ping/upload endpoints (decisions.md 6): features through /low-level, 25 ids a
    request; the result and model are kept under work_dir/results/<job_id>/ and the log says so."""
    srv, token, dataset = owner
    job = srv.submit(dataset, "--c-values", "1", "--gamma-values", "-3", "--preprocessing", "basic")
    proxy = proxy_factory(server_root(srv))
    proxy.rules([{"path": p, "action": "404", "count": 1000}
                 for p in ("/claim", "/whoami", "/ping", "/features", "/result", "/fail")])
    d = daemon_factory({"server_url": proxy.url}, token=token).start()
    d.wait_log("has only AcousticBrainz's API")
    kept = os.path.join(d.work_dir, "results", job)
    d.wait_log("finished: accuracy")
    with open(os.path.join(kept, "result.json")) as f:
        result = json.load(f)
    assert result["dataset"]["n_recordings"] == 60
    with open(os.path.join(kept, "model.history"), "rb") as f:
        assert f.read(4) == b"\x6a\xea\x72\x3d"
    lowlevel = [l for l in proxy.log().splitlines() if "/low-level" in l]
    assert len(lowlevel) == 3 and all(" ids=" in l and int(l.split(" ids=")[1].split()[0]) <= 25 for l in lowlevel)
    assert "kept in " + kept in d.current_output()
    # Not trained twice: the job stays pending on a server that cannot take results, and later
    # polls skip it.
    assert job_details(srv, token, job)["status"] == "pending"
    polls = lambda: proxy.log().count("GET /api/v1/datasets/evaluation/jobs -> 200")  # noqa: E731
    after = polls()
    wait_for(lambda: polls() >= after + 2, what="two more polls")
    assert d.current_output().count("has only AcousticBrainz's API") == 1
    assert "claimed job" not in d.current_output()


def test_lease_expired_while_frozen_goes_to_another_runner(server_factory, daemon_factory):
    """Runner A freezes (SIGSTOP) mid-training past the lease; runner B claims and finishes
    the job; A, thawed, learns the lease is gone and drops the job: one result, no duplicate."""
    from helpers.server import EXAMPLE_DATASET
    srv = server_factory(args=["--ping-interval", "1", "--lease-seconds", "10"])
    token = srv.add_user("alice")
    job = srv.submit(srv.import_dataset(EXAMPLE_DATASET, owner="alice"), *GRID_MEDIUM)
    a = daemon_factory({"server_url": server_root(srv), "runner_name": "runner-a"}, token=token, name="a").start()
    _wait_mid_training(a, job, at_least=0.05)
    worker = held_state(a.work_dir, job)["worker_pgid"]
    a.signal(signal.SIGSTOP)  # the whole runner freezes: daemon and training processes
    os.killpg(worker, signal.SIGSTOP)
    try:
        wait_for(lambda: job_details(srv, token, job)["status"] == "pending", 60, what="the lease to expire")
        b = daemon_factory({"server_url": server_root(srv), "runner_name": "runner-b"}, token=token,
                           name="b").start()
        b.wait_log("claimed job %s" % job)
    finally:
        os.killpg(worker, signal.SIGCONT)
        a.signal(signal.SIGCONT)
    a.wait_log("job %s: lease lost" % job)
    details = wait_job_status(srv, token, job, "done")
    assert details["result"]["runner"]["name"] == "runner-b"
    wait_for(lambda: not os.path.exists(os.path.join(a.work_dir, "jobs", job)), 120,
             what="runner A to drop the job")
    assert "job %s dropped: its lease went to another runner" % job in a.current_output()
    assert a.proc.poll() is None and b.proc.poll() is None
