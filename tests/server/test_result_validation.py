"""Every validation rule of a result upload answers 422 with its own code, over real HTTP."""
import copy
import json

import pytest
import requests
from helpers.jobflow import FAKE_MODEL, claim, details, example_model, new_job, plausible_result, upload


@pytest.fixture(scope="module")
def claimed(world):
    """One claimed job whose uploads are all refused (so it stays claimable for every case)."""
    job = new_job(world.srv, world.alice, world.dataset)
    lease = claim(world.srv, world.alice, job).json()
    return world, job, lease["lease_id"], plausible_result(details(world.srv, world.alice, job))


def _mutated(result, change):
    out = copy.deepcopy(result)
    change(out)
    return out


def _first_class(r):
    return sorted(r["confusion_matrix"])[0]


CASES = {
    "unknown_top_field": (lambda r: r.update(extra=1), "unknown_field"),
    "missing_accuracy": (lambda r: r.pop("accuracy"), "bad_result"),
    "accuracy_not_number": (lambda r: r.update(accuracy="96"), "bad_result"),
    "accuracy_out_of_range": (lambda r: r.update(accuracy=101), "bad_result"),
    "accuracy_inconsistent": (lambda r: r.update(accuracy=r["accuracy"] - 1), "accuracy_mismatch"),
    "class_missing": (lambda r: r["confusion_matrix"].pop(_first_class(r)), "class_mismatch"),
    "class_unknown": (lambda r: r["confusion_matrix"].update(jazz={"jazz": 1}), "class_mismatch"),
    "predicted_unknown": (lambda r: r["confusion_matrix"][_first_class(r)].update(jazz=1), "class_mismatch"),
    "negative_count": (lambda r: r["confusion_matrix"][_first_class(r)].update({_first_class(r): -1}),
                       "bad_result"),
    "row_too_big": (lambda r: r["confusion_matrix"][_first_class(r)].update({_first_class(r): 1000}),
                    "count_mismatch"),
    "counts_short": (lambda r: r["dataset"].update(n_recordings=r["dataset"]["n_recordings"] - 1),
                     "count_mismatch"),
    "C_outside_grid": (lambda r: r["parameters"]["model"].update(C=99), "outside_grid"),
    "gamma_outside_grid": (lambda r: r["parameters"]["model"].update(gamma=5), "outside_grid"),
    "preprocessing_outside_grid": (lambda r: r["parameters"]["model"].update(preprocessing="gaussianized"),
                                   "outside_grid"),
    "kernel_unknown": (lambda r: r["parameters"]["model"].update(kernel="linear"), "outside_grid"),
    "classifier_wrong": (lambda r: r["parameters"]["model"].update(type="nu-SVC"), "outside_grid"),
    "nfold_bad": (lambda r: r["parameters"]["evaluation"].update(nfold=1), "bad_result"),
    "seed_differs": (lambda r: r.update(seed=7), "bad_result"),
    "combination_outside_grid": (lambda r: r["combinations"][0].update(C=99), "outside_grid"),
    "combination_folds_inconsistent": (lambda r: r["combinations"][0]["fold_correct"].__setitem__(
        0, r["combinations"][0]["fold_total"][0] + 1), "bad_result"),
    "combination_accuracy_wrong": (lambda r: r["combinations"][0].update(accuracy=1.0), "accuracy_mismatch"),
    "combination_total_wrong": (lambda r: r["combinations"][0]["fold_total"].__setitem__(
        0, r["combinations"][0]["fold_total"][0] + 1),
                                "count_mismatch"),
    "best_not_in_combinations": (lambda r: r["combinations"][0].update(status="failed"), "bad_result"),
    "runner_field_unknown": (lambda r: r["runner"].update(os="x"), "unknown_field"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_result_is_refused(claimed, case):
    world, job, lease_id, good = claimed
    change, code = CASES[case]
    r = upload(world.srv, world.alice, job, lease_id, _mutated(good, change))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert r.json()["message"] == r.json()["error"]


def test_model_must_be_a_gaia_history(claimed):
    world, job, lease_id, good = claimed
    r = upload(world.srv, world.alice, job, lease_id, good, model=b"PK\x03\x04 a zip file")
    assert r.status_code == 422 and r.json()["code"] == "bad_model"
    r = upload(world.srv, world.alice, job, lease_id, good, model=FAKE_MODEL)
    assert r.status_code == 422 and r.json()["code"] == "bad_model", "the magic alone is not enough"
    assert "not a valid Gaia history" in r.json()["message"]


def test_model_classes_must_be_the_datasets(claimed, tmp_path):
    pytest.importorskip("abrunnerd.trainer")
    from abrunnerd.gaia.history import dumps_history, loads_history

    world, job, lease_id, good = claimed
    steps = loads_history(example_model())
    svm = [s for s in steps if s.analyzer == "svmtrain"][-1]
    svm.params["classMapping"] = type(svm.params["classMapping"])(["jazz", "rock", "speech"])
    r = upload(world.srv, world.alice, job, lease_id, good, model=dumps_history(steps))
    assert r.status_code == 422 and r.json()["code"] == "bad_model" and "jazz" in r.json()["message"]


def test_result_part_must_be_json(claimed):
    world, job, lease_id, good = claimed
    r = upload(world.srv, world.alice, job, lease_id, None, raw_result=b"{nope")
    assert r.status_code == 422 and r.json()["code"] == "invalid_json"
    r = upload(world.srv, world.alice, job, lease_id, [1, 2])
    assert r.status_code == 422 and r.json()["code"] == "bad_result"


def test_upload_form_errors(claimed):
    world, job, lease_id, good = claimed
    url = world.srv.url("/datasets/evaluation/jobs/%s/result" % job)
    auth = world.srv.auth(world.alice)
    r = requests.put(url, json={"lease_id": lease_id, "result": good}, headers=auth)
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = requests.put(url, data={"lease_id": lease_id}, files={"model": ("m", b"x")}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "missing_field"
    r = requests.put(url, data={"lease_id": lease_id, "extra": "1"},
                     files={"model": ("m", b"x"), "result": ("r", json.dumps(good).encode())}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "unknown_field"
    r = requests.put(url, data={"lease_id": "x"}, files={"model": ("m", b"x"), "result": ("r", b"{}")}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "bad_field"
    assert details(world.srv, world.alice, job)["status"] == "running"


def test_oversized_uploads_are_413(server_factory):
    size = len(example_model())
    srv = server_factory(args=("--spot-check-cells", "0", "--max-result-bytes", "20000",
                               "--max-model-bytes", str(size)))
    token = srv.add_user("alice")
    job = srv.submit(srv.import_dataset(owner="alice"), "--c-values", "1", "--gamma-values", "1",
                     "--preprocessing", "basic")
    lease_id = claim(srv, token, job).json()["lease_id"]
    good = plausible_result(details(srv, token, job))
    r = upload(srv, token, job, lease_id, good, model=b"\x6a\xea\x72\x3d" + b"x" * size)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    model = example_model()
    r = upload(srv, token, job, lease_id, dict(good, runner=dict(good["runner"], name="x" * 30000)))
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    r = upload(srv, token, job, lease_id, good, model=b"\x6a\xea\x72\x3d" + b"x" * 4000000)
    assert r.status_code == 413 and r.json()["code"] == "too_large", "whole body over the limit"
    assert upload(srv, token, job, lease_id, good, model=model).status_code == 201
