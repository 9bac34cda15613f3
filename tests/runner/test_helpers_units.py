"""The small generic helpers: backoff, atomic writes, durable state, status line."""
import os
import random

from abrunnerd import atomic
from abrunnerd.backoff import Backoff
from abrunnerd.state import StateStore
from abrunnerd.status import summary  # noqa: F401 (kept importable)


def test_backoff_grows_and_caps_with_jitter():
    b = Backoff(base=2, cap=300, jitter=0.25, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(15)]
    assert 1.5 <= delays[0] <= 2.5
    assert all(d <= 300 for d in delays)
    assert delays[-1] >= 225  # at the cap, less at most the jitter
    assert delays[3] > delays[0]
    b.reset()
    assert b.next_delay() <= 2.5


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = str(tmp_path / "f.json")
    atomic.write_json(path, {"a": 1})
    atomic.write_json(path, {"a": 2})
    assert atomic.read_json(path) == {"a": 2}
    assert os.listdir(str(tmp_path)) == ["f.json"]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_state_store_keeps_runner_id_and_jobs(tmp_path):
    store = StateStore(str(tmp_path))
    store.ensure_dirs()
    rid = store.runner_id()
    assert StateStore(str(tmp_path)).runner_id() == rid
    j1 = "0b0e9a51-8f0c-4a5e-9d3a-5c1f0e2d7a61"  # job ids are canonical UUIDs (ids.py)
    store.save(j1, {"job_id": j1, "lease_id": "L"})
    assert store.held_jobs() == [j1]
    assert store.update(j1, stage="training")["lease_id"] == "L"
    store.forget(j1)
    assert store.held_jobs() == [] and not os.path.exists(store.files(j1).dir)


def test_status_line_for_systemctl():
    snap = {"state": "training", "job_id": "1f3c0000-aaaa", "fraction": 0.43, "cells_done": 620,
            "cells_total": 1440, "eta_seconds": 720}
    assert summary(snap) == "training job 1f3c0000…: 43% (620/1440 cells), ETA 12 min"
