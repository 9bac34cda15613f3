"""Pings while a large dataset is submitted: the snapshot is built by a build-worker process.

    nice .venv/bin/python benchmarks/submit_during_pings.py [--recordings 1200] [--runners 20] [--rate 40]
                                                            [--phases idle,background,in-request,locked]

A job server (gunicorn, 2 workers x 8 threads, SQLite, and ``abserver build-worker`` beside
it, as docs/server.md describes for gunicorn started directly; ``abserver serve`` runs the
same two kinds of process) with ``--runners`` claimed jobs that ping at ``--rate`` pings/s in
total, in phases measured side by side in one run:

* idle: nobody submits;
* background: the owner submits a dataset of ``--recordings`` recordings over the API, as
  the server does it now: the request answers at once (202, ``preparing``) and the build
  worker process builds the snapshot and bundle; the phase lasts until the job is pending;
* in-request: the same build done the previous way, inside a request thread of a gunicorn
  worker (read connection, short write transaction), through a path that only this
  benchmark's WSGI wrapper (benchmarks/inrequest_submit.py) has;
* locked (only when asked for): the way before that, the whole build inside a write
  transaction (``BEGIN IMMEDIATE`` on SQLite holds the database's single write lock), by a
  helper process on the same database.

Printed per phase: pings, p50, p99 and max latency, errors, the build's duration, the
submit request's answer time, and the load average before and after. Everything runs on
loopback and stops by itself.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import List

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.server import EXAMPLE_DATASET, ServerProcess, _env  # noqa: E402

PHASES = ("idle", "background", "in-request", "locked")

LOCKED_BUILD = """
import sys, time
from abserver.db import make_engine
from abserver.datasets import build_snapshot, get_dataset
engine = make_engine(sys.argv[1])
with engine.connect() as conn:
    owner = conn.exec_driver_sql("SELECT owner_id FROM datasets WHERE id = ?", (sys.argv[2],)).scalar()
start = time.monotonic()
with engine.begin() as conn:  # the old submit: the whole build inside the write transaction
    build_snapshot(conn, get_dataset(conn, sys.argv[2], owner))
print(time.monotonic() - start)
"""


OWNER_ID = """
import sys
from abserver.db import make_engine
with make_engine(sys.argv[1]).connect() as conn:
    print(conn.exec_driver_sql("SELECT owner_id FROM datasets WHERE id = ?", (sys.argv[2],)).scalar())
"""


def make_dataset_dir(root: Path, recordings: int) -> Path:
    """``recordings`` documents (the example's, under new MBIDs) in two classes."""
    sources = sorted((EXAMPLE_DATASET / "lowlevel").glob("*.json"))
    (root / "lowlevel").mkdir(parents=True)
    classes = [{"name": "a", "description": "", "recordings": []}, {"name": "b", "description": "", "recordings": []}]
    for i in range(recordings):
        mbid = str(uuid.uuid4())
        shutil.copy(sources[i % len(sources)], root / "lowlevel" / ("%s.json" % mbid))
        classes[i % 2]["recordings"].append(mbid)
    (root / "dataset.json").write_text(json.dumps({"name": "large", "description": "", "public": False,
                                                   "classes": classes}))
    return root


class Pinger:
    def __init__(self, srv: ServerProcess, token: str, jobs: List[tuple], rate: float):
        self.srv, self.token, self.jobs, self.rate = srv, token, jobs, rate
        self.latencies: List[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run_one(self, job_id: str, lease_id: str, offset: float) -> None:
        session = requests.Session()
        interval = len(self.jobs) / self.rate
        next_at = time.monotonic() + offset
        body = {"lease_id": lease_id, "runner_name": "bench", "runner_version": "0", "stage": "training",
                "cells_done": 0, "cells_total": 10}
        while not self.stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            start = time.monotonic()
            try:
                r = session.post(self.srv.url("/datasets/evaluation/jobs/%s/ping" % job_id), json=body,
                                 headers=self.srv.auth(self.token), timeout=120)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            self.latencies.append(time.monotonic() - start)
            self.errors += 0 if ok else 1

    def phase(self, action) -> dict:
        load_before = os.getloadavg()[0]
        self.latencies, self.errors = [], 0
        self.stop.clear()
        threads = [threading.Thread(target=self.run_one, args=(j, l, i / self.rate)) for i, (j, l) in
                   enumerate(self.jobs)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        took = action()
        time.sleep(1.0)
        self.stop.set()
        for t in threads:
            t.join()
        lat = sorted(self.latencies)
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        build_s, answer_s = took if isinstance(took, tuple) else (took, took)
        return {"pings": len(lat), "p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] * 1000,
                "errors": self.errors, "build_s": build_s, "answer_s": answer_s,
                "load": "%.1f-%.1f" % (load_before, os.getloadavg()[0])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=1200)
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--phases", default="idle,background,in-request",
                        help="comma-separated, of: %s (default %%(default)s)" % ", ".join(PHASES))
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error("unknown phase(s) %s; known: %s" % (", ".join(unknown), ", ".join(PHASES)))
    os.environ["PYTHONPATH"] = str(REPO / "benchmarks") + os.pathsep + os.environ.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with ServerProcess(tmp_path / "srv", args=("--spot-check-cells", "0"), gunicorn_workers=2,
                           gunicorn_threads=8, gunicorn_timeout=600, wsgi_app="inrequest_submit:app") as srv:
            token = srv.add_user("bench")
            small = srv.import_dataset(owner="bench")
            jobs = []
            for _ in range(args.runners):
                job = srv.submit(small, "--c-values", "1", "--gamma-values", "-3", "--preprocessing", "basic")
                lease = requests.post(srv.url("/datasets/evaluation/jobs/%s/claim" % job), headers=srv.auth(token),
                                      json={"runner_id": str(uuid.uuid4()), "runner_name": "b",
                                            "runner_version": "0"}).json()["lease_id"]
                jobs.append((job, lease))
            large = srv.import_dataset(make_dataset_dir(tmp_path / "large", args.recordings), owner="bench")
            owner_id = int(subprocess.run([sys.executable, "-c", OWNER_ID, srv.db_url, large], env=_env(),
                                          capture_output=True, text=True, check=True).stdout)
            pinger = Pinger(srv, token, jobs, args.rate)

            def idle():
                time.sleep(5.0)
                return 0.0

            def background():
                start = time.monotonic()
                r = requests.post(srv.url("/datasets/%s/evaluate" % large), json={"options": {
                    "c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]}},
                    headers=srv.auth(token), timeout=600)
                answered = time.monotonic() - start
                assert r.status_code == 202, r.text
                job = srv.wait_built(token, r.json()["job_id"], timeout=1200)
                assert job["status"] == "pending", job
                return time.monotonic() - start, answered

            def in_request():
                start = time.monotonic()
                root = srv.base_url[:-len("/api/v1")]
                r = requests.post(root + "/bench/build-in-request/%s/%d" % (large, owner_id), timeout=1200)
                assert r.status_code == 200, r.text
                return time.monotonic() - start

            def locked():
                done = subprocess.run([sys.executable, "-c", LOCKED_BUILD, srv.db_url, large], env=_env(),
                                      capture_output=True, text=True, timeout=1200, cwd=str(REPO))
                assert done.returncode == 0, done.stderr
                return float(done.stdout.strip())

            actions = {"idle": idle, "background": background, "in-request": in_request, "locked": locked}
            print("%d recordings, %d runners pinging at %.0f/s in total (gunicorn 2x8 + a build worker, SQLite; "
                  "%d CPUs)" % (args.recordings, args.runners, args.rate, os.cpu_count() or 0))
            print("%-10s %6s %9s %9s %9s %6s %8s %9s %9s" % ("phase", "pings", "p50 ms", "p99 ms", "max ms",
                                                           "errors", "build s", "answer s", "load"))
            for name in phases:
                row = pinger.phase(actions[name])
                print("%-10s %6d %9.1f %9.1f %9.1f %6d %8.1f %9.2f %9s" % (
                    name, row["pings"], row["p50"], row["p99"], row["max"], row["errors"], row["build_s"],
                    row["answer_s"], row["load"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
