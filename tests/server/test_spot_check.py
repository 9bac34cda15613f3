"""The spot check recomputes grid cells with the project's trainer: honest results pass, forged ones do not.

The runner side is played by this test: it downloads the features bundle over HTTP,
trains the job's small grid with ``abrunnerd.trainer`` exactly as a runner would,
and uploads the result and the Gaia history.
"""
import copy
import subprocess
import sys

import pytest
import requests
from helpers.jobflow import claim, details, upload
from helpers.server import REPO

# The project's own modules are imported, never skipped: a broken import fails the suite.
from abrunnerd import trainer
from abrunnerd.trainer.bundle import dataset_from_bundle
from abrunnerd.gaia.history import dumps_history

GRID = ("--c-values", "1", "3", "--gamma-values", "-3", "-5", "--preprocessing", "basic")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A server checking every cell with a tight tolerance, and one honestly trained upload for it."""
    from helpers.server import ServerProcess

    srv = ServerProcess(tmp_path_factory.mktemp("spot"), args=(
        "--spot-check-cells", "1000", "--spot-check-tolerance", "0.05")).start()
    token = srv.add_user("alice")
    dataset = srv.import_dataset(owner="alice")
    jobs = [srv.submit(dataset, *GRID) for _ in range(2)]
    job = details(srv, token, jobs[0])
    lease = claim(srv, token, jobs[0]).json()
    bundle = requests.get(lease["features_url"], headers=srv.auth(token)).content
    groundtruth = {m: c["name"] for c in job["dataset"]["classes"] for m in c["recordings"]}
    ds = dataset_from_bundle(bundle, job["dataset"]["name"], groundtruth)  # as the training process reads it
    res = trainer.train(ds, trainer.TrainOptions.from_job_options(job["options"], seed=job["seed"]), workers=1)
    result = res.to_result_json()
    result["runner"] = {"name": "spot-test", "version": "0", "python": "3", "sklearn": "x", "numpy": "x"}
    yield srv, token, jobs, lease["lease_id"], result, dumps_history(res.model.steps)
    srv.stop()


def forged(result):
    """The named best's cells all perfect: consistent in itself (it stays the best of the
    table and matches the confusion matrix), so only recomputation can catch it."""
    out = copy.deepcopy(result)
    named = out["parameters"]["model"]
    for combo in out["combinations"]:
        if combo["status"] == "ok" and all(combo[k] == named[k] for k in ("preprocessing", "kernel", "C", "gamma")):
            combo["fold_correct"] = list(combo["fold_total"])
            combo["accuracy"] = 100.0
    out["accuracy"] = 100.0
    out["confusion_matrix"] = {cls: {cls: sum(row.values())} for cls, row in result["confusion_matrix"].items()}
    return out


def test_forged_result_is_refused_by_the_spot_check(trained):
    srv, token, jobs, lease_id, result, model = trained
    fake = forged(result)
    assert fake != result, "the honest result is not perfect on this dataset"
    r = upload(srv, token, jobs[0], lease_id, fake, model=model)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "spot_check_failed"
    assert "recomputation" in r.json()["message"]
    assert details(srv, token, jobs[0])["status"] == "running"


def test_honest_result_passes_the_spot_check(trained):
    srv, token, jobs, lease_id, result, model = trained
    r = upload(srv, token, jobs[0], lease_id, result, model=model)
    assert r.status_code == 201, r.text
    assert details(srv, token, jobs[0])["result"]["accuracy"] == result["accuracy"]


def test_result_without_fold_details_cannot_be_checked(trained):
    srv, token, jobs, _lease, result, model = trained
    lease_id = claim(srv, token, jobs[1]).json()["lease_id"]
    bare = {k: v for k, v in result.items() if k != "combinations"}
    r = upload(srv, token, jobs[1], lease_id, bare, model=model)
    assert r.status_code == 422 and r.json()["code"] == "missing_combinations"


def test_server_starts_without_numpy():
    code = ("import sys; from abserver.cli import build_parser; from abserver import app, api, spotcheck; "
            "sys.exit(1 if 'numpy' in sys.modules or 'sklearn' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True)
    assert done.returncode == 0, "the server imports numpy at startup: " + done.stderr


def test_honest_result_with_empty_folds_passes(trained):
    """Issue 17: classes of <= 5 recordings leave folds empty; the spot check divided by zero (500)."""
    srv, token, _jobs, _lease, _result, _model = trained
    classes = details(srv, token, _jobs[0])["dataset"]["classes"][:2]
    body = {"name": "tiny", "public": False, "classes": [{"name": c["name"], "recordings": c["recordings"][:4]}
                                                         for c in classes]}
    dataset = requests.post(srv.url("/datasets"), json=body, headers=srv.auth(token)).json()["dataset_id"]
    job_id = requests.post(srv.url("/datasets/%s/evaluate" % dataset), headers=srv.auth(token), json={
        "options": {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["lowlevel"]}}).json()["job_id"]
    job = srv.wait_built(token, job_id)
    lease = claim(srv, token, job_id).json()
    bundle = requests.get(lease["features_url"], headers=srv.auth(token)).content
    groundtruth = {m: c["name"] for c in job["dataset"]["classes"] for m in c["recordings"]}
    ds = dataset_from_bundle(bundle, "tiny", groundtruth)
    res = trainer.train(ds, trainer.TrainOptions.from_job_options(job["options"], seed=job["seed"]), workers=1)
    result = res.to_result_json()
    assert any(0 in c["fold_total"] for c in result["combinations"] if c["status"] == "ok"), "no empty fold"
    r = upload(srv, token, job_id, lease["lease_id"], result, model=dumps_history(res.model.steps))
    assert r.status_code == 201, r.text
