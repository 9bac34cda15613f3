#!/usr/bin/env python3
"""Many simulated runners polling, claiming, pinging and finishing jobs over real HTTP.

Each simulated runner is a thread with its own HTTP session and runner id.  It loops
until the deadline: list the owner's pending jobs, claim one of the oldest few (so
runners of one owner race for the same jobs), ping it a few times, then report it
failed with a reason naming itself (which ends the job and lets the database say who
held it).  With nothing to claim it just polls.  Used by
``tests/reliability/test_rel_load.py`` (gunicorn + PostgreSQL) and runnable alone:

    benchmarks/load_runners.py --url http://127.0.0.1:8080 --tokens tokens.txt \
        --runners 200 --duration 20

Latencies are per request, measured on the client; the figures are printed as JSON.
Requests go only to the URL given (meant for a server on this machine).
"""
import argparse
import json
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

import requests

API = "/api/v1"
PINGS_PER_JOB = 3


class Stats:
    """Thread-safe latency and outcome tallies per request kind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: Dict[str, List[float]] = defaultdict(list)
        self.errors: Dict[str, int] = defaultdict(int)
        self.transport_errors = 0  # no HTTP answer at all (reset, refused, timeout)
        self.error_samples: List[str] = []
        self.claims: List[Tuple[str, str, str]] = []  # (job_id, runner_id, lease_id)
        self.claim_conflicts = 0
        self.fails_ok: List[Tuple[str, str]] = []  # (job_id, runner_id)

    def add(self, kind: str, seconds: float, error: Optional[str] = None,
            transport: bool = False) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if error:
                self.errors[kind] += 1
                self.transport_errors += transport
                if len(self.error_samples) < 20:
                    self.error_samples.append("%s: %s" % (kind, error[:200]))


def _pct(values: List[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000.0


class Runner(threading.Thread):
    def __init__(self, base_url: str, token: str, deadline: float, stats: Stats,
                 think: Tuple[float, float], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.url = base_url.rstrip("/") + API
        self.deadline = deadline
        self.stats = stats
        self.think = think
        self.rng = rng
        self.runner_id = str(uuid.uuid4())
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = "Token " + token

    def _call(self, kind: str, method: str, path: str, ok=(200,), **kw: Any):
        t0 = time.monotonic()
        try:
            resp = self.session.request(method, self.url + path, timeout=60, **kw)
        except requests.RequestException as exc:
            self.stats.add(kind, time.monotonic() - t0, "%s: %s" % (type(exc).__name__, exc), transport=True)
            return None
        elapsed = time.monotonic() - t0
        if resp.status_code in ok:
            self.stats.add(kind, elapsed)
        else:
            self.stats.add(kind, elapsed, "HTTP %d %s" % (resp.status_code, resp.text[:120]))
        return resp

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            resp = self._call("list", "GET", "/datasets/evaluation/jobs",
                              params={"status": "pending", "location": "remote"})
            jobs = []
            if resp is not None and resp.status_code == 200:
                jobs = resp.json().get("jobs", [])
            if jobs:
                job = self.rng.choice(jobs[:3])
                self._work(job["job_id"])
            time.sleep(self.rng.uniform(*self.think))
        self.session.close()

    def _work(self, job_id: str) -> None:
        body = {"runner_id": self.runner_id, "runner_name": "load-%s" % self.runner_id[:8],
                "runner_version": "load", "lease_id": None}
        resp = self._call("claim", "POST", "/datasets/evaluation/jobs/%s/claim" % job_id,
                          ok=(200, 409), json=body)
        if resp is None or resp.status_code != 200:
            if resp is not None and resp.status_code == 409:
                with self.stats.lock:
                    self.stats.claim_conflicts += 1
            return
        lease = resp.json()["lease_id"]
        with self.stats.lock:
            self.stats.claims.append((job_id, self.runner_id, lease))
        for i in range(PINGS_PER_JOB):
            time.sleep(self.rng.uniform(*self.think))
            self._call("ping", "POST", "/datasets/evaluation/jobs/%s/ping" % job_id, json={
                "lease_id": lease, "runner_name": body["runner_name"], "runner_version": "load",
                "stage": "training", "fraction": (i + 1) / (PINGS_PER_JOB + 1.0),
                "eta_seconds": 10, "message": "cell %d" % (i + 1), "cells_done": i + 1,
                "cells_total": PINGS_PER_JOB + 1})
        resp = self._call("fail", "POST", "/datasets/evaluation/jobs/%s/fail" % job_id,
                          json={"lease_id": lease, "reason": "load test runner %s" % self.runner_id})
        if resp is not None and resp.status_code == 200:
            with self.stats.lock:
                self.stats.fails_ok.append((job_id, self.runner_id))


def run_load(base_url: str, tokens: List[str], runners: int, duration: float,
             think: Tuple[float, float] = (0.05, 0.3), seed: int = 1) -> Dict[str, Any]:
    """Run ``runners`` threads (spread over ``tokens``) for ``duration`` seconds."""
    stats = Stats()
    rng = random.Random(seed)
    start = time.monotonic()
    deadline = start + duration
    threads = [Runner(base_url, tokens[i % len(tokens)], deadline, stats, think,
                      random.Random(rng.random())) for i in range(runners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration + 120)
    wall = time.monotonic() - start
    all_lat = [x for v in stats.latency.values() for x in v]
    per_job: Dict[str, set] = defaultdict(set)
    for job_id, runner_id, _lease in stats.claims:
        per_job[job_id].add(runner_id)
    return {
        "runners": runners, "owners": len(tokens), "duration_s": round(wall, 1),
        "requests": len(all_lat), "throughput_rps": round(len(all_lat) / wall, 1),
        "p50_ms": round(_pct(all_lat, 0.50), 1), "p99_ms": round(_pct(all_lat, 0.99), 1),
        "max_ms": round(max(all_lat) * 1000.0, 1) if all_lat else 0.0,
        "errors": sum(stats.errors.values()), "transport_errors": stats.transport_errors,
        "http_errors": sum(stats.errors.values()) - stats.transport_errors,
        "error_samples": stats.error_samples,
        "claims_won": len(stats.claims), "claims_conflict": stats.claim_conflicts,
        "jobs_failed_by_runner": len(stats.fails_ok),
        "double_assigned_client": sum(1 for r in per_job.values() if len(r) > 1),
        "claims": stats.claims, "fails_ok": stats.fails_ok,
        "per_endpoint": {k: {"count": len(v), "p50_ms": _pct(v, 0.5), "p99_ms": _pct(v, 0.99),
                             "errors": stats.errors.get(k, 0)} for k, v in stats.latency.items()},
        "threads_unfinished": sum(1 for t in threads if t.is_alive()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the job server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--tokens", required=True, help="file with one owner token a line")
    ap.add_argument("--runners", type=int, default=200)
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    tokens = [t.strip() for t in open(args.tokens) if t.strip()]
    figures = run_load(args.url, tokens, args.runners, args.duration)
    for k in ("claims", "fails_ok"):
        figures.pop(k)
    json.dump(figures, sys.stdout, indent=2)
    print()
    return 0 if figures["double_assigned_client"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
