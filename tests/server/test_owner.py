"""The owner's paths: datasets and documents over the API, submitting, and their errors."""
import json
import uuid

import requests
from helpers.server import EXAMPLE_DATASET

DOC_DIR = EXAMPLE_DATASET / "lowlevel"


def _dataset(n_per_class=2, classes=("a", "b")):
    docs = sorted(DOC_DIR.glob("*.json"))
    it = iter(docs)
    out = []
    for name in classes:
        out.append({"name": name, "description": "", "recordings": [next(it).stem for _ in range(n_per_class)]})
    return {"name": "api-made", "description": "made over the API", "public": False, "classes": out}


def test_create_dataset_upload_documents_and_evaluate(world):
    srv, auth = world.srv, world.srv.auth(world.bob)
    data = _dataset()
    mbids = [m for c in data["classes"] for m in c["recordings"]]
    fresh = [str(uuid.uuid4()), str(uuid.uuid4())]
    data["classes"][0]["recordings"] += fresh
    r = requests.post(srv.url("/datasets"), json=data, headers=auth)
    assert r.status_code == 201, r.text
    dataset_id = r.json()["dataset_id"]
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset_id), json={}, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "missing_lowlevel"
    for mbid, source in zip(fresh, mbids):
        doc = json.loads((DOC_DIR / ("%s.json" % source)).read_text())
        r = requests.put(srv.url("/low-level/%s" % mbid), json=doc, headers=auth)
        assert r.status_code == 200 and r.json() == {"mbid": mbid}
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset_id),
                      json={"eval_location": "remote", "options": {"c_values": [1]}, "seed": 7}, headers=auth)
    assert r.status_code == 202 and r.json()["status"] == "preparing", r.text
    job = srv.wait_built(world.bob, r.json()["job_id"])
    assert job["status"] == "pending"
    assert job["seed"] == 7 and job["options"]["c_values"] == [1]
    assert job["options"]["gamma_values"] == [3, 1, -1, -3, -5, -7, -9, -11]
    assert job["dataset"]["num_recordings"] == 6 and job["dataset"]["public"] is False
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset_id), json={}, headers=world.srv.auth(world.alice))
    assert r.status_code == 404, "another owner's dataset"


def test_dataset_and_document_errors(world):
    srv, auth = world.srv, world.srv.auth(world.bob)
    good = _dataset()
    bad_cases = [
        dict(good, classes=[]),
        dict(good, name=""),
        dict(good, colour="red"),
        dict(good, classes=[{"name": "a", "recordings": ["not-an-mbid"]}]),
        dict(good, classes=[{"name": "a", "recordings": []}, {"name": "a", "recordings": []}]),
    ]
    for body in bad_cases:
        r = requests.post(srv.url("/datasets"), json=body, headers=auth)
        assert r.status_code == 400 and r.json()["code"] == "bad_dataset", body
    r = requests.put(srv.url("/low-level/%s" % uuid.uuid4()), json={"no": "lowlevel"}, headers=auth)
    assert r.status_code == 422 and r.json()["code"] == "bad_document"
    r = requests.put(srv.url("/low-level/xyz"), json={"lowlevel": {}}, headers=auth)
    assert r.status_code == 400


def test_evaluate_errors(world):
    srv, auth = world.srv, world.srv.auth(world.bob)
    ok = requests.post(srv.url("/datasets"), json=_dataset(), headers=auth).json()["dataset_id"]
    cases = [
        (ok, {"options": {"c_values": []}}, 400, "bad_options"),
        (ok, {"options": {"kernel": "rbf"}}, 400, "bad_options"),
        (ok, {"options": {"preprocessing_values": ["raw"]}}, 400, "bad_options"),
        (ok, {"options": {"filter_type": "album"}}, 400, "bad_options"),
        (ok, {"seed": -1}, 400, "bad_field"),
        (ok, {"eval_location": "moon"}, 400, "bad_field"),
        (ok, {"priority": 1}, 400, "unknown_field"),
        (str(uuid.uuid4()), {}, 404, "not_found"),
        ("nope", {}, 404, "not_found"),
    ]
    for dataset_id, body, status, code in cases:
        r = requests.post(srv.url("/datasets/%s/evaluate" % dataset_id), json=body, headers=auth)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)


def test_model_before_result_is_404(world):
    r = requests.get(world.srv.url("/datasets/evaluation/jobs/%s/model" % world.job), headers=world.srv.auth(world.alice))
    assert r.status_code == 404 and r.json()["code"] == "no_model"


def test_untrainable_datasets_are_refused_at_creation_naming_the_problem(world):
    srv, auth = world.srv, world.srv.auth(world.bob)
    two_classes = _dataset()
    twice = two_classes["classes"][0]["recordings"][0]
    two_classes["classes"][1]["recordings"].append(twice)
    empty = _dataset(classes=("a", "b", "c"))
    empty["classes"][2]["recordings"] = []
    cases = [
        (_dataset(classes=("a",)), "too_few_classes", "2 classes"),
        (_dataset(n_per_class=1), "too_few_recordings", "'a', 'b'"),
        (empty, "empty_class", "'c'"),
        (two_classes, "recording_in_two_classes", twice),
    ]
    for body, code, named in cases:
        r = requests.post(srv.url("/datasets"), json=body, headers=auth)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
        assert named in r.json()["message"], r.text


def test_same_recording_holds_one_document_per_owner(world):
    """Bob's document of a recording in alice's dataset is his own copy: alice's stays hers."""
    srv = world.srv
    mbid = sorted(p.stem for p in DOC_DIR.glob("*.json"))[0]  # stored by alice's import
    before = requests.get(srv.url("/low-level"), params={"recording_ids": mbid}, headers=srv.auth(world.alice)).json()
    poison = {"lowlevel": {"poison": {"mean": 1.0}}}
    r = requests.put(srv.url("/low-level/%s" % mbid), json=poison, headers=srv.auth(world.bob))
    assert r.status_code == 200, r.text
    after = requests.get(srv.url("/low-level"), params={"recording_ids": mbid}, headers=srv.auth(world.alice)).json()
    assert after == before
    bobs = requests.get(srv.url("/low-level"), params={"recording_ids": mbid}, headers=srv.auth(world.bob)).json()
    assert bobs[mbid]["0"] == poison


def test_documents_may_hold_nan_other_bodies_may_not(world):
    srv, auth = world.srv, world.srv.auth(world.bob)
    mbid = str(uuid.uuid4())
    r = requests.put(srv.url("/low-level/%s" % mbid), data=b'{"lowlevel": {"x": {"mean": NaN}}}',
                     headers=dict(auth, **{"Content-Type": "application/json"}))
    assert r.status_code == 200
    got = requests.get(srv.url("/low-level"), params={"recording_ids": mbid}, headers=auth)
    assert got.status_code == 200 and json.loads(got.text)[mbid]["0"]["lowlevel"]["x"]["mean"] != 0
    r = requests.post(srv.url("/datasets"), data=b'{"name": "x", "classes": [], "public": NaN}',
                      headers=dict(auth, **{"Content-Type": "application/json"}))
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
