"""The runner's side of the protocol over real HTTP: claim, features, ping, fail, result, cancel."""
import hashlib
import json
import uuid

import requests
from helpers.jobflow import claim, details, example_model, new_job, ping, plausible_result, upload

from abrunnerd.trainer.bundle import dataset_from_bundle


def _claimed(world):
    job = new_job(world.srv, world.alice, world.dataset)
    r = claim(world.srv, world.alice, job)
    assert r.status_code == 200, r.text
    return job, r.json()


def test_claim_answers_lease_and_bundle_facts(world):
    job, lease = _claimed(world)
    assert lease["job_id"] == job and lease["seed"] == 42 and lease["resumed"] is False
    assert lease["lease_seconds"] > lease["ping_interval"] > 0
    r = requests.get(lease["features_url"], headers=world.srv.auth(world.alice))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-abrunner-features"
    assert int(r.headers["Content-Length"]) == lease["features_size"] == len(r.content)
    assert hashlib.sha256(r.content).hexdigest() == lease["features_sha256"] == r.headers["X-Content-SHA256"]
    assert r.headers["ETag"] == '"%s"' % lease["features_sha256"]
    info = details(world.srv, world.alice, job)
    assert info["status"] == "running"
    groundtruth = {m: c["name"] for c in info["dataset"]["classes"] for m in c["recordings"]}
    assert r.content[4] == 2, "a job of AB's preprocessing sets gets the reduced (version 2) bundle"
    ds = dataset_from_bundle(r.content, "x", groundtruth)
    assert sorted(ds.merged.frame.ids) == sorted(groundtruth) and len(groundtruth) == 60
    names = [d.name for d in ds.merged.raw_layout.descriptors]
    assert ".metadata.audio_properties.length" in names  # stripped as AB stripped, names kept for the history
    assert not [n for n in names if n.startswith(".metadata.tags") or n.endswith((".sample_rate", ".lossless"))]
    assert all(ds.artists[m] for m in groundtruth)


def test_features_download_resumes_with_range(world):
    job, lease = _claimed(world)
    auth = world.srv.auth(world.alice)
    full = requests.get(lease["features_url"], headers=auth).content
    part = requests.get(lease["features_url"], headers=dict(auth, Range="bytes=1000-"))
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 1000-%d/%d" % (len(full) - 1, len(full))
    assert full[:1000] + part.content == full
    mid = requests.get(lease["features_url"], headers=dict(auth, Range="bytes=10-19"))
    assert mid.status_code == 206 and mid.content == full[10:20]
    stale = requests.get(lease["features_url"], headers=dict(auth, Range="bytes=10-", **{"If-Range": '"other"'}))
    assert stale.status_code == 200 and stale.content == full
    beyond = requests.get(lease["features_url"], headers=dict(auth, Range="bytes=%d-" % len(full)))
    assert beyond.status_code == 416 and beyond.json()["code"] == "bad_range"
    assert beyond.headers["Content-Range"] == "bytes */%d" % len(full)
    bad = requests.get(lease["features_url"], headers=dict(auth, Range="bytes=1-2,5-6"))
    assert bad.status_code == 416
    same = requests.get(lease["features_url"], headers=dict(auth, **{"If-None-Match": '"%s"' % lease[
        "features_sha256"]}))
    assert same.status_code == 304


def test_second_claimer_gets_409_and_owner_of_lease_resumes(world):
    job, lease = _claimed(world)
    other = claim(world.srv, world.alice, job)
    assert other.status_code == 409 and other.json()["code"] == "already_claimed"


def test_ping_renews_and_records_progress(world):
    job, lease = _claimed(world)
    r = ping(world.srv, world.alice, job, lease["lease_id"], cells_done=3, cells_total=10, eta_seconds=120)
    assert r.status_code == 200, r.text
    assert r.json() == {"cancel": False, "ping_interval": lease["ping_interval"],
                        "lease_seconds": lease["lease_seconds"], "stalled": False}
    progress = details(world.srv, world.alice, job)["progress"]
    assert progress["stage"] == "training" and progress["cells_done"] == 3 and progress["eta_seconds"] == 120
    assert progress["runner_name"] == "test-runner"
    wrong = ping(world.srv, world.alice, job, str(uuid.uuid4()))
    assert wrong.status_code == 409 and wrong.json()["code"] == "lease_lost"


def test_ping_input_errors(world):
    job, lease = _claimed(world)
    srv, auth = world.srv, world.srv.auth(world.alice)
    url = srv.url("/datasets/evaluation/jobs/%s/ping" % job)
    base = {"lease_id": lease["lease_id"], "runner_name": "r", "runner_version": "1", "stage": "training"}
    cases = [
        (dict(base, bogus=1), 400, "unknown_field"),
        (dict(base, stage="sleeping"), 400, "bad_field"),
        (dict(base, fraction=1.5), 400, "bad_field"),
        (dict(base, cells_done=-1), 400, "bad_field"),
        (dict(base, cells_done="3"), 400, "bad_field"),
        (dict(base, lease_id="nope"), 400, "bad_field"),
        ({k: v for k, v in base.items() if k != "stage"}, 400, "missing_field"),
        ([1, 2], 400, "invalid_body"),
        (dict(base, message="a\x00b"), 400, "bad_string"),
    ]
    for body, status, code in cases:
        r = requests.post(url, json=body, headers=auth)
        assert (r.status_code, r.json()["code"]) == (status, code), body
    r = requests.post(url, data="{not json", headers=dict(auth, **{"Content-Type": "application/json"}))
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    r = requests.post(url, data=json.dumps(base), headers=dict(auth, **{"Content-Type": "text/plain"}))
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"


def test_result_upload_is_idempotent_and_final(world):
    job, lease = _claimed(world)
    result = plausible_result(details(world.srv, world.alice, job))
    first = upload(world.srv, world.alice, job, lease["lease_id"], result)
    assert first.status_code == 201, first.text
    assert first.json() == {"job_id": job, "status": "done", "replayed": False}
    again = upload(world.srv, world.alice, job, lease["lease_id"], result)
    assert again.status_code == 200 and again.json()["replayed"] is True
    different = dict(result, runner=dict(result["runner"], name="someone else"))
    r = upload(world.srv, world.alice, job, lease["lease_id"], different)
    assert r.status_code == 409 and r.json()["code"] == "result_exists"
    shown = details(world.srv, world.alice, job)
    assert shown["status"] == "done" and shown["result"] == result
    model = requests.get(world.srv.url("/datasets/evaluation/jobs/%s/model" % job), headers=world.srv.auth(world.alice))
    assert model.status_code == 200 and model.content == example_model()
    assert claim(world.srv, world.alice, job).json()["code"] == "job_finished"
    late = ping(world.srv, world.alice, job, lease["lease_id"], stage="uploading")
    assert late.status_code == 200 and late.json()["cancel"] is False, "lost upload answer: runner retries"
    assert ping(world.srv, world.alice, job, str(uuid.uuid4())).json()["code"] == "lease_lost"


def test_fail_marks_job_failed_with_reason(world):
    job, lease = _claimed(world)
    url = world.srv.url("/datasets/evaluation/jobs/%s/fail" % job)
    r = requests.post(url, json={"lease_id": str(uuid.uuid4()), "reason": "x"}, headers=world.srv.auth(world.alice))
    assert r.status_code == 409 and r.json()["code"] == "lease_lost"
    r = requests.post(url, json={"lease_id": lease["lease_id"], "reason": "recording X lacks lowlevel.mfcc"},
                      headers=world.srv.auth(world.alice))
    assert r.status_code == 200
    shown = details(world.srv, world.alice, job)
    assert shown["status"] == "failed" and shown["status_msg"] == "recording X lacks lowlevel.mfcc"
    r = requests.post(url, json={"lease_id": lease["lease_id"], "reason": "again"}, headers=world.srv.auth(world.alice))
    assert r.status_code == 409 and r.json()["code"] == "job_finished"


def test_owner_cancel_reaches_runner_through_ping(world):
    job, lease = _claimed(world)
    cancel = requests.post(world.srv.url("/datasets/evaluation/jobs/%s/cancel" % job), headers=world.srv.auth(world.alice))
    assert cancel.status_code == 200 and cancel.json()["status"] == "canceled"
    r = ping(world.srv, world.alice, job, lease["lease_id"])
    assert r.status_code == 200 and r.json()["cancel"] is True
    result = plausible_result(details(world.srv, world.alice, job))
    r = upload(world.srv, world.alice, job, lease["lease_id"], result)
    assert r.status_code == 409 and r.json()["code"] == "job_canceled"
    listed = requests.get(world.srv.url("/datasets/evaluation/jobs?status=pending&location=remote"),
                          headers=world.srv.auth(world.alice)).json()["jobs"]
    assert job not in [j["job_id"] for j in listed]


def test_pending_job_cancel_and_local_job_claim(world):
    job = new_job(world.srv, world.alice, world.dataset)
    assert requests.post(world.srv.url("/datasets/evaluation/jobs/%s/cancel" % job),
                         headers=world.srv.auth(world.alice)).status_code == 200
    assert claim(world.srv, world.alice, job).json()["code"] == "job_finished"
    local = new_job(world.srv, world.alice, world.dataset, eval_location="local")
    r = claim(world.srv, world.alice, local)
    assert r.status_code == 409 and r.json()["code"] == "not_remote"


def test_tokens_scope_runner_paths(world):
    job, lease = _claimed(world)
    for r in (claim(world.srv, world.bob, job), ping(world.srv, world.bob, job, lease["lease_id"]),
              upload(world.srv, world.bob, job, lease["lease_id"], {})):
        assert r.status_code == 404 and r.json()["code"] == "not_found"
