"""AcousticBrainz's paths answer with AB's shapes (../shared/docs/ab-api-samples) and AB's errors."""
import json
import re
from pathlib import Path

import requests

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "docs" / "ab-api-samples"
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       r"\d{4} \d\d:\d\d:\d\d GMT$")
JOB_DETAILS_KEYS = {"created", "dataset", "dataset_id", "eval_location", "id", "options", "result", "snapshot_id",
                    "status", "status_msg", "testing_snapshot", "training_snapshot", "updated"}
DATASET_KEYS = {"author", "classes", "created", "description", "id", "last_edited", "name", "num_recordings",
                "public"}


def _types(value):
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value).__name__


def test_job_list_has_ab_shape_and_only_own_jobs(world):
    srv = world.srv
    r = requests.get(srv.url("/datasets/evaluation/jobs"), params={"status": "pending", "location": "remote"},
                     headers=srv.auth(world.alice))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["username"] == "alice"
    listed = [j["job_id"] for j in body["jobs"]]
    assert listed[0] == world.job, "oldest first"
    assert world.bob_job not in listed
    for job in body["jobs"]:
        assert set(job) == {"created", "dataset_name", "job_id"}
        assert HTTP_DATE.match(job["created"])
    assert list(body) == sorted(body), "AB answers with sorted keys"
    bobs = requests.get(srv.url("/datasets/evaluation/jobs?status=pending&location=remote"),
                        headers=srv.auth(world.bob)).json()
    assert bobs["username"] == "bob"
    assert bobs["jobs"][0]["job_id"] == world.bob_job and world.job not in [j["job_id"] for j in bobs["jobs"]]


def test_job_details_have_ab_fields_and_types(world):
    srv = world.srv
    body = requests.get(srv.url("/datasets/evaluation/jobs/" + world.job), headers=srv.auth(world.alice)).json()
    assert JOB_DETAILS_KEYS <= set(body)
    assert set(body) - JOB_DETAILS_KEYS == {"error_code", "progress", "seed", "stalled"}
    assert set(body["dataset"]) == DATASET_KEYS
    assert body["status"] == "pending" and body["eval_location"] == "remote"
    assert body["options"] == {"c_values": [1, 3], "gamma_values": [-3], "preprocessing_values": ["basic"],
                               "filter_type": None, "normalize": False}
    for key in ("created", "updated"):
        assert HTTP_DATE.match(body[key])
    assert all(isinstance(c["id"], str) for c in body["dataset"]["classes"])
    assert body["dataset"]["num_recordings"] == 60
    if (SAMPLES / "job_details.json").exists():
        sample = json.loads((SAMPLES / "job_details.json").read_text())
        ours = {k: v for k, v in _types(body).items() if k in sample}
        theirs = _types(sample)
        ours["dataset"].pop("classes"), theirs["dataset"].pop("classes")
        assert ours == theirs


def test_another_owners_job_is_404_not_403(world):
    srv = world.srv
    for path in ("", "/features", "/model"):
        r = requests.get(srv.url("/datasets/evaluation/jobs/%s%s" % (world.bob_job, path)),
                         headers=srv.auth(world.alice))
        assert r.status_code == 404, path
    r = requests.post(srv.url("/datasets/evaluation/jobs/%s/cancel" % world.bob_job), headers=srv.auth(world.alice))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


def test_list_errors_are_ab_messages_with_our_code(world):
    srv = world.srv
    for params in ({}, {"status": "done", "location": "remote"}, {"status": "pending"}):
        r = requests.get(srv.url("/datasets/evaluation/jobs"), params=params, headers=srv.auth(world.alice))
        assert r.status_code == 400
        assert r.json()["message"] == "parameter location must be 'remote' and status 'pending'"
        assert r.json()["code"] == "bad_parameter"
    r = requests.get(srv.url("/datasets/evaluation/jobs?status=pending&location=remote"))
    assert r.status_code == 401
    assert r.json()["message"] == "You need to provide an Authorization header."
    r = requests.get(srv.url("/datasets/evaluation/jobs?status=pending&location=remote"),
                     headers={"Authorization": "Token nope"})
    assert r.status_code == 401 and r.json()["code"] == "bad_token"
    r = requests.get(srv.url("/datasets/evaluation/jobs/not-a-uuid"), headers=srv.auth(world.alice))
    assert r.status_code == 404 and r.json()["message"] == "No such job"


def test_bulk_lowlevel_like_ab(world):
    srv = world.srv
    job = requests.get(srv.url("/datasets/evaluation/jobs/" + world.job), headers=srv.auth(world.alice)).json()
    ids = job["dataset"]["classes"][0]["recordings"][:3]
    r = requests.get(srv.url("/low-level"), params={"recording_ids": ";".join(ids)}, headers=srv.auth(world.alice))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(ids) | {"mbid_mapping"}
    assert body["mbid_mapping"] == {}
    doc = body[ids[0]]["0"]
    assert "tags" in doc["metadata"], "the AB path serves the document as stored"
    unknown = "00000000-0000-4000-8000-000000000000"
    r = requests.get(srv.url("/low-level"), params={"recording_ids": unknown}, headers=srv.auth(world.alice))
    assert r.json() == {"mbid_mapping": {}}
    r = requests.get(srv.url("/low-level"), params={"recording_ids": ";".join([unknown] * 26)},
                     headers=srv.auth(world.alice))
    assert r.status_code == 400
    assert r.json()["message"] == "More than 25 recordings not allowed per request"
    r = requests.get(srv.url("/low-level"), headers=srv.auth(world.alice))
    assert r.status_code == 400 and r.json()["message"] == "Missing `recording_ids` parameter"
    r = requests.get(srv.url("/low-level?recording_ids=xyz"), headers=srv.auth(world.alice))
    assert r.status_code == 400 and r.json()["code"] == "bad_parameter"


def test_whoami_and_openapi(world):
    srv = world.srv
    assert requests.get(srv.url("/whoami"), headers=srv.auth(world.bob)).json() == {
        "username": "bob", "api_version": 1, "server_version": requests.get(
            srv.url("/whoami"), headers=srv.auth(world.bob)).json()["server_version"]}
    spec = requests.get(srv.url("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")


def test_unknown_endpoint_and_method_are_json(world):
    srv = world.srv
    r = requests.get(srv.url("/nope"), headers=srv.auth(world.alice))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = requests.delete(srv.url("/datasets/evaluation/jobs/" + world.job), headers=srv.auth(world.alice))
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
