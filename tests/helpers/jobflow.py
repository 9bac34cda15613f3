"""Protocol steps as small functions for server tests: claim, ping, a plausible result, upload.

``plausible_result`` builds a result that passes every structural check of the server
(classes, counts, accuracy, grid) without training; servers that should accept it run
with ``--spot-check-cells 0`` (the spot check would recompute cells and refuse it).
"""
import functools
import json
import uuid
from typing import Any, Dict, Optional, Tuple

import requests

HISTORY_MAGIC = b"\x6a\xea\x72\x3d"
FAKE_MODEL = HISTORY_MAGIC + b"\x00\x00\x00\x66" + b"fake history body for protocol tests"


@functools.lru_cache(maxsize=None)
def example_model() -> bytes:
    """A genuine Gaia history for examples/ab-real-small's classes (trained once, one grid cell).

    The server parses uploaded models and compares their classes with the dataset's, so
    protocol tests upload this instead of a fake.
    """
    from abrunnerd.gaia.history import dumps_history
    from abrunnerd.trainer import TrainOptions, load_dataset_dir, train

    from .server import EXAMPLE_DATASET

    opts = TrainOptions.from_job_options({"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]},
                                         seed=42)
    return dumps_history(train(load_dataset_dir(str(EXAMPLE_DATASET)), opts, workers=1).model.steps)


def claim(srv, token: str, job_id: str, runner_id: Optional[str] = None, lease_id: Optional[str] = None,
          name: str = "test-runner") -> requests.Response:
    body = {"runner_id": runner_id or str(uuid.uuid4()), "runner_name": name, "runner_version": "0.1.0"}
    if lease_id is not None:
        body["lease_id"] = lease_id
    return requests.post(srv.url("/datasets/evaluation/jobs/%s/claim" % job_id), json=body,
                         headers=srv.auth(token), timeout=60)


def ping(srv, token: str, job_id: str, lease_id: str, stage: str = "training", cells_done: Optional[int] = 0,
         cells_total: Optional[int] = 10, **extra) -> requests.Response:
    body = {"lease_id": lease_id, "runner_name": "test-runner", "runner_version": "0.1.0", "stage": stage,
            "fraction": None if cells_done is None or not cells_total else cells_done / cells_total,
            "eta_seconds": None, "message": "test", "cells_done": cells_done, "cells_total": cells_total}
    body.update(extra)
    return requests.post(srv.url("/datasets/evaluation/jobs/%s/ping" % job_id), json=body,
                         headers=srv.auth(token), timeout=60)


def details(srv, token: str, job_id: str) -> Dict[str, Any]:
    r = requests.get(srv.url("/datasets/evaluation/jobs/%s" % job_id), headers=srv.auth(token), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


EXAMPLE_MODEL_PARAMS = {"preprocessing": "basic", "kernel": "poly", "C": 1, "gamma": -3}  # of example_model()


def plausible_result(job: Dict[str, Any], correct_per_class: int = 1,
                     best: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A structurally valid result for job details ``job``: a diagonal-heavy matrix, the job's
    whole grid with ``best`` (default: example_model()'s configuration) the one trained
    combination and every other one failed."""
    classes = job["dataset"]["classes"]
    names = [c["name"] for c in classes]
    opts = job["options"]
    matrix: Dict[str, Dict[str, int]] = {}
    correct = total = 0
    for i, cls in enumerate(classes):
        n = len(set(cls["recordings"]))
        right = max(0, n - correct_per_class) if correct_per_class < n else n
        wrong = n - right
        row = {cls["name"]: right}
        if wrong:
            row[names[(i + 1) % len(names)]] = wrong
        matrix[cls["name"]] = {k: v for k, v in row.items() if v}
        correct += right
        total += n
    accuracy = round(100.0 * correct / total, 2)
    best = dict(best or EXAMPLE_MODEL_PARAMS)
    folds = 5
    fold_total = [total // folds + (1 if k < total % folds else 0) for k in range(folds)]
    fold_correct, left = [], correct
    for t in fold_total:
        c = min(t, left)
        fold_correct.append(c)
        left -= c
    combinations = []
    for p in opts["preprocessing_values"]:
        for k in ("poly", "RBF"):
            for c in opts["c_values"]:
                for g in opts["gamma_values"]:
                    combo = {"preprocessing": p, "kernel": k, "C": c, "gamma": g}
                    if combo == best:
                        combinations.append(dict(combo, status="ok", accuracy=100.0 * correct / total,
                                                 fold_correct=fold_correct, fold_total=fold_total, error=None))
                    else:
                        combinations.append(dict(combo, status="failed", accuracy=None, fold_correct=[],
                                                 fold_total=[], error="not trained in this test"))
    return {
        "parameters": {"model": dict(classifier="svm", type="C-SVC", **best),
                       "evaluation": {"type": "nfoldcrossvalidation", "nfold": folds}},
        "accuracy": accuracy,
        "confusion_matrix": matrix,
        "seed": job["seed"],
        "combinations": combinations,
        "dataset": {"n_recordings": total, "descriptors_dropped": 0, "template": "2.1-beta2"},
        "runner": {"name": "test-runner", "version": "0.1.0", "python": "3", "sklearn": "1", "numpy": "1"},
    }


def upload(srv, token: str, job_id: str, lease_id: str, result: Any, model: Optional[bytes] = None,
           raw_result: Optional[bytes] = None) -> requests.Response:
    """PUT result + model (default: ``example_model()``, fit for jobs on examples/ab-real-small)."""
    if model is None:
        model = example_model()
    files: Dict[str, Tuple] = {
        "result": ("result.json", raw_result if raw_result is not None else json.dumps(result).encode(),
                   "application/json"),
        "model": ("model.history", model, "application/octet-stream"),
    }
    return requests.put(srv.url("/datasets/evaluation/jobs/%s/result" % job_id), data={"lease_id": lease_id},
                        files=files, headers=srv.auth(token), timeout=300)


def new_job(srv, token: str, dataset_id: str, wait: bool = True, **body) -> str:
    """A fresh job on the owner's dataset, submitted over the API (small grid by default);
    ``wait``: once the server's build worker made it pending (claimable)."""
    body.setdefault("options", {"c_values": [1, 3], "gamma_values": [-3], "preprocessing_values": ["basic"]})
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset_id), json=body, headers=srv.auth(token),
                      timeout=120)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "preparing"
    job_id = r.json()["job_id"]
    if wait:
        built = srv.wait_built(token, job_id)
        assert built["status"] == "pending", built
    return job_id
