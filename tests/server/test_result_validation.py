"""Every validation rule of a result upload answers 422 with its own code, over real HTTP."""
import copy
import json

import pytest
import requests
from abrunnerd.gaia.history import dumps_history, loads_history
from helpers.jobflow import EXAMPLE_MODEL_PARAMS, FAKE_MODEL, claim, details, example_model, new_job, plausible_result, upload


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
    "best_not_in_combinations": (lambda r: _best(r).update(status="failed"), "best_mismatch"),
    # issue 17: results that contradict themselves
    "nfold_differs_from_folds": (lambda r: r["parameters"]["evaluation"].update(nfold=2), "fold_count_mismatch"),
    "named_best_is_not_the_best": (lambda r: _other(r).update(_ok_copy(r)), "best_mismatch"),
    "folds_differ_between_combinations": (lambda r: _other(r).update(_ok_copy(r, shift=True)),
                                          "fold_partition_mismatch"),
    "combination_missing": (lambda r: r["combinations"].remove(_other(r)), "incomplete_grid"),
    "seed_is_a_float": (lambda r: r.update(seed=float(r["seed"])), "bad_result"),
    "nfold_is_a_float": (lambda r: r["parameters"]["evaluation"].update(nfold=5.0), "bad_result"),
    "fold_count_is_a_float": (lambda r: _best(r)["fold_total"].__setitem__(0, _best(r)["fold_total"][0] * 1.0),
                              "bad_result"),
    "runner_field_unknown": (lambda r: r["runner"].update(os="x"), "unknown_field"),
}


def _best(r):
    named = r["parameters"]["model"]
    return next(c for c in r["combinations"] if all(c[k] == named[k] for k in ("preprocessing", "kernel", "C", "gamma")))


def _other(r):
    return next(c for c in r["combinations"] if c is not _best(r))


def _ok_copy(r, shift=False):
    """The best combination's folds with one more correct (a better configuration), or with
    one recording moved between the first two folds (another partition)."""
    best = _best(r)
    correct, total = list(best["fold_correct"]), list(best["fold_total"])
    if shift:
        total[0] += 1
        total[1] -= 1
        correct[0], correct[1] = min(correct[0], total[0]), min(correct[1], total[1])
    else:
        i = next(k for k in range(len(total)) if correct[k] < total[k])
        correct[i] += 1
    return {"status": "ok", "fold_correct": correct, "fold_total": total, "error": None,
            "accuracy": 100.0 * sum(correct) / sum(total)}


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
    world, job, lease_id, good = claimed
    steps = loads_history(example_model())
    svm = [s for s in steps if s.analyzer == "svmtrain"][-1]
    svm.params["classMapping"] = type(svm.params["classMapping"])(["jazz", "rock", "speech"])
    r = upload(world.srv, world.alice, job, lease_id, good, model=dumps_history(steps))
    assert r.status_code == 422 and r.json()["code"] == "bad_model" and "jazz" in r.json()["message"]


def test_model_must_be_the_named_best(claimed):
    """A model of the other kernel (or C, gamma, preprocessing) than the named parameters is refused."""
    world, job, lease_id, good = claimed
    result = plausible_result(details(world.srv, world.alice, job), best=dict(EXAMPLE_MODEL_PARAMS, kernel="RBF"))
    r = upload(world.srv, world.alice, job, lease_id, result)  # example_model() is poly
    assert r.status_code == 422 and r.json()["code"] == "model_mismatch", r.text
    assert "kernel" in r.json()["message"]
    result = plausible_result(details(world.srv, world.alice, job), best=dict(EXAMPLE_MODEL_PARAMS, C=3))
    r = upload(world.srv, world.alice, job, lease_id, result)  # example_model() has C = 2^1
    assert r.status_code == 422 and r.json()["code"] == "model_mismatch" and "C" in r.json()["message"], r.text


def test_model_class_mapping_of_mixed_types_is_422_not_500(claimed):
    world, job, lease_id, good = claimed
    steps = loads_history(example_model())
    svm = [s for s in steps if s.analyzer == "svmtrain"][-1]
    svm.params["classMapping"] = [1, "rock", 2.5]
    r = upload(world.srv, world.alice, job, lease_id, good, model=dumps_history(steps))
    assert r.status_code == 422 and r.json()["code"] == "bad_model", r.text


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
    job = srv.submit(srv.import_dataset(owner="alice"), "--c-values", "1", "--gamma-values", "-3",
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


def _map_bomb(entries: int) -> bytes:
    """A history whose first step's analyzer params are ``entries`` tiny map entries."""
    from abrunnerd.gaia.history import FORMAT_VERSION, MAGIC
    from abrunnerd.gaia.qdatastream import MAP, Writer

    w = Writer()
    w.i32(FORMAT_VERSION)
    w.u32(1)
    for text in ("", "svmtrain", "svmpredict"):
        w.qstring(text)
    w.u32(MAP)
    w.u8(0)
    w.u32(entries)
    for i in range(entries):
        w.qstring("%x" % i)
        w.u32(1)  # Bool
        w.u8(0)
        w.u8(1)
    return MAGIC + w.getvalue()


def test_model_of_many_tiny_map_entries_is_refused_by_its_item_count(claimed):
    """Issue 17: bytes alone did not bound parsing (a 64 MB map cost ~7x in memory, 25 s)."""
    world, job, lease_id, good = claimed
    r = upload(world.srv, world.alice, job, lease_id, good, model=_map_bomb(400000))
    assert r.status_code == 422 and r.json()["code"] == "bad_model", r.text
    assert "limit on container items" in r.json()["message"]
