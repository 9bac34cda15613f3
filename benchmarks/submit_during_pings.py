"""Pings while a large dataset is submitted: the bundle is built outside the database's write lock.

    .venv/bin/python benchmarks/submit_during_pings.py [--recordings 1200] [--runners 20] [--rate 40]

A job server (``abserver serve``: gunicorn, 2 workers x 8 threads, SQLite) with
``--runners`` claimed jobs that ping at ``--rate`` pings/s in total, in three phases
measured side by side in one run:

* idle: nobody submits;
* submit: the owner submits a dataset of ``--recordings`` recordings over the API, as the
  server does it now (documents read and the features bundle encoded on a read
  connection, then a short write transaction for snapshot and job);
* locked: the same build done the old way, inside a write transaction (``BEGIN
  IMMEDIATE`` on SQLite, which holds the database's single write lock), by a helper
  process on the same database, so pings must wait for it.

Printed per phase: pings, p50, p99 and max latency, errors, and the build's duration.
Everything runs on loopback and stops by itself.
"""
import argparse
import json
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
        return {"pings": len(lat), "p50": pct(0.5), "p99": pct(0.99), "max": lat[-1] * 1000,
                "errors": self.errors, "build_s": took}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=1200)
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with ServerProcess(tmp_path / "srv", args=("--spot-check-cells", "0")) as srv:
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
            pinger = Pinger(srv, token, jobs, args.rate)

            def idle():
                time.sleep(5.0)
                return 0.0

            def submit():
                start = time.monotonic()
                r = requests.post(srv.url("/datasets/%s/evaluate" % large), json={}, headers=srv.auth(token),
                                  timeout=600)
                assert r.status_code == 201, r.text
                return time.monotonic() - start

            def locked():
                done = subprocess.run([sys.executable, "-c", LOCKED_BUILD, srv.db_url, large], env=_env(),
                                      capture_output=True, text=True, timeout=600, cwd=str(REPO))
                assert done.returncode == 0, done.stderr
                return float(done.stdout.strip())

            print("%d recordings, %d runners pinging at %.0f/s in total (gunicorn 2x8, SQLite)"
                  % (args.recordings, args.runners, args.rate))
            print("%-8s %6s %9s %9s %9s %6s %8s" % ("phase", "pings", "p50 ms", "p99 ms", "max ms", "errors",
                                                   "build s"))
            for name, action in (("idle", idle), ("submit", submit), ("locked", locked)):
                row = pinger.phase(action)
                print("%-8s %6d %9.1f %9.1f %9.1f %6d %8.1f" % (name, row["pings"], row["p50"], row["p99"],
                                                              row["max"], row["errors"], row["build_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
