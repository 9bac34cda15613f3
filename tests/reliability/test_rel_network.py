"""Network faults: runner and server in two network namespaces joined by a veth pair.

The link first loses 30 % of packets each way with added delay (claim and download go
through it), then is cut completely while the job trains and uploads (short form 15 s,
long form a minute), then heals.  The job must complete with a result equal to an
undisturbed run's, with nobody touching the runner or the server.

Addresses are 10.200.x.x inside the two namespaces only; the runner is allowed plain
HTTP to that non-loopback address explicitly (``allow_insecure_http: true``), and a
second case checks that without it the daemon refuses to start (the first case is the
proof that the explicit opt-in works).
"""
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from rel_harness import leaks, record
from rel_harness.daemon import Daemon
from rel_harness.jobwatch import comparable, local_state
from rel_harness.procs import wait_for
from rel_harness.server import AbServer

LONG = bool(os.environ.get("ABRUNNERD_LONG"))
GRID = ["--c-values", "-1", "1", "3", "--gamma-values", "-5", "-3", "--preprocessing", "basic", "normalized"]
PORT = 18080  # inside the server's own namespace: nothing else listens there
TIMEOUT = 400


def db_job(db_path, job_id):
    con = sqlite3.connect(str(db_path), timeout=30)
    try:
        row = con.execute("SELECT status, status_msg, result, progress FROM jobs WHERE id = ?", (job_id,)).fetchone()
    finally:
        con.close()
    return {"status": row[0], "status_msg": row[1], "result": json.loads(row[2]) if row[2] else None,
            "progress": json.loads(row[3]) if row[3] else None}


def _ended(db, job):
    return db_job(db, job)["status"] in ("done", "failed", "canceled")


def _server(pair, tmp_path, name):
    db = tmp_path / "abserver.db"
    srv = AbServer("sqlite:///%s" % db, host=pair.addr_b, port=PORT, wrap=pair.argv_b([]), name=name,
                   options=["--ping-interval", "2", "--lease-seconds", "30"])
    srv.db_path = db
    srv.token = srv.add_user("alice")
    srv.dataset = srv.import_example("alice")
    return srv.start()


def _daemon(pair, srv, base, name, insecure=True):
    extra = {"allow_insecure_http": True} if insecure else {}
    return Daemon(base, srv.base_url, srv.token, name=name, wrap=pair.argv_a([]), extra=extra)


def _run(pair, srv, base, name, faults):
    job = srv.submit(srv.dataset, *GRID)
    d = _daemon(pair, srv, base, name).start()
    try:
        faults(d, job)
        wait_for(lambda: _ended(srv.db_path, job), TIMEOUT, interval=1, what="job %s to end" % job)
        wait_for(lambda: not d.leftovers(), 120, interval=1, what="work_dir to be cleaned")
        return job, d.alive(), d.leftovers()
    finally:
        d.stop()


def test_loss_delay_then_partition(netpair, tmp_path, baselines):
    srv = _server(netpair, tmp_path, "abserver-netns")
    try:
        if tuple(GRID) not in baselines:
            base_job, _, _ = _run(netpair, srv, tmp_path / "baseline", "daemon-net-baseline", lambda d, j: None)
            first = db_job(srv.db_path, base_job)
            assert first["status"] == "done", first["status_msg"]
            baselines[tuple(GRID)] = comparable(first["result"])
        baseline = {"result": baselines[tuple(GRID)]}
        partition_s = 60 if LONG else 10
        marks = {}

        def faults(d, job):
            netpair.degrade(loss_percent=30, delay_ms=100)
            wait_for(lambda: local_state(d.work_dir, job).get("stage") == "training", TIMEOUT, interval=0.2,
                     what="training to start over the lossy link")
            marks["claimed_over_loss"] = True
            netpair.partition()
            marks["partitioned_at"] = time.monotonic()
            time.sleep(partition_s)
            marks["status_during"] = db_job(srv.db_path, job)["status"]
            netpair.heal()

        with record.case("network_faults", "30 %% loss + delay during claim and download, then %d s "
                         "partition during training/upload, then heal" % partition_s) as c:
            c.extra["mechanism"] = netpair.mechanism
            job, alive, leftovers = _run(netpair, srv, tmp_path / "faulted", "daemon-net", faults)
            final = db_job(srv.db_path, job)
            c.message = "%s (%s; job was %s during the partition)" % (
                final["status"] if final["status"] != "done" else "completed after healing",
                netpair.mechanism, marks.get("status_during"))
            assert final["status"] == "done", final["status_msg"]
            assert comparable(final["result"]) == comparable(baseline["result"]), "result differs"
            assert alive, "daemon exited"
            assert not leftovers, leftovers
    finally:
        srv.stop()


def test_runner_refuses_plain_http_to_a_non_loopback_server(netpair, tmp_path):
    srv = _server(netpair, tmp_path, "abserver-netns-http")
    try:
        d = _daemon(netpair, srv, tmp_path / "refuse", "daemon-refuse-http", insecure=False).start()
        wait_for(lambda: not d.alive(), 60, what="the daemon to refuse its configuration")
        out = d.output()
        with record.case("security", "runner refuses plain HTTP to a non-loopback server") as c:
            c.message = out.strip().splitlines()[-1].replace(str(tmp_path), "<dir>") if out.strip() else ""
            assert d.proc.popen.returncode == 78, out
            assert "allow_insecure_http" in out and netpair.addr_b in out
            assert not leaks.find_in_text(out, [srv.token])
    finally:
        srv.stop()
