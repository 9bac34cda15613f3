"""Bad input and cross-owner access on the job server, over real HTTP.

One real server (gunicorn, as in production, on a SQLite file) serves the module;
small upload limits are set through its environment so "too large" needs megabytes,
not hundreds.  Every case records the status, code and sentence the client receives.
"""
import hashlib
import json
import sqlite3
import uuid

import pytest

from rel_harness import leaks, record
from rel_harness.server import AbServer, Api, error_text, example_dataset_json

RESULT_LIMIT, MODEL_LIMIT = 64 << 10, 1 << 20
GRID = ["--c-values", "-1", "1", "--gamma-values", "-3", "--preprocessing", "basic"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    db = tmp_path_factory.mktemp("srv") / "abserver.db"
    server = AbServer("sqlite:///%s" % db, gunicorn_workers=2, name="abserver-input", env={
        "ABSERVER_MAX_RESULT_BYTES": str(RESULT_LIMIT), "ABSERVER_MAX_MODEL_BYTES": str(MODEL_LIMIT)})
    server.db_path = db
    server.alice = server.add_user("alice")
    server.mallory = server.add_user("mallory")
    server.dataset = server.import_example("alice")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def claimed(srv):
    """A job of alice's, claimed by a runner of alice's: (job_id, lease_id)."""
    job_id = srv.submit(srv.dataset, *GRID)
    r = Api(srv.base_url, srv.alice).call("POST", "/datasets/evaluation/jobs/%s/claim" % job_id, json={
        "runner_id": str(uuid.uuid4()), "runner_name": "t", "runner_version": "0", "lease_id": None})
    assert r.status_code == 200, error_text(r)
    return job_id, r.json()["lease_id"]


def _case(name, resp, statuses, code=None):
    """Record a bad-input case: the server must answer a 4xx JSON error, never a 5xx."""
    with record.case("bad_input", name) as c:
        c.message = error_text(resp)
        assert resp.status_code in statuses, c.message
        assert resp.headers.get("Content-Type", "").startswith("application/json"), c.message
        body = resp.json()
        assert body.get("message") and body.get("error") == body.get("message"), body
        if code:
            assert body.get("code") == code, c.message
        assert "Traceback" not in resp.text


def _claim_body(**over):
    body = {"runner_id": str(uuid.uuid4()), "runner_name": "r", "runner_version": "0", "lease_id": None}
    body.update(over)
    return body


JOBS = "/datasets/evaluation/jobs"


def test_auth_errors(srv):
    _case("server: no Authorization header", Api(srv.base_url, None).call("GET", JOBS, params={
        "status": "pending", "location": "remote"}), (401,))
    _case("server: unknown token", Api(srv.base_url, "0" * 64).call("GET", "/whoami"), (401,), "bad_token")
    r = Api(srv.base_url, None).call("GET", "/whoami", headers={"Authorization": "Bearer " + srv.alice})
    _case("server: wrong auth scheme (Bearer)", r, (401,), "bad_token")
    assert srv.alice not in r.text


def test_claim_body_errors(srv, claimed):
    api = Api(srv.base_url, srv.alice)
    job = srv.submit(srv.dataset, *GRID)
    path = "%s/%s/claim" % (JOBS, job)
    _case("server: claim body is not JSON", api.call("POST", path, data=b"{runner_id:",
                                                      headers={"Content-Type": "application/json"}),
          (400,), "invalid_json")
    _case("server: claim body sent as text/plain", api.call("POST", path, data=json.dumps(_claim_body()),
                                                            headers={"Content-Type": "text/plain"}),
          (415,))
    _case("server: claim body with an unknown field", api.call("POST", path, json=_claim_body(evil=1)),
          (400,), "unknown_field")
    _case("server: claim runner_id of the wrong type", api.call("POST", path, json=_claim_body(runner_id=5)),
          (400,))
    _case("server: claim runner_id not a UUID", api.call("POST", path, json=_claim_body(runner_id="../x")),
          (400,))
    _case("server: claim body of 2 MiB", api.call("POST", path, json=_claim_body(runner_name="x" * (2 << 20))),
          (400, 413))
    _case("server: claim body is a JSON list", api.call("POST", path, json=[1, 2]), (400,))
    _case("server: claim of a job already claimed", api.call("POST", "%s/%s/claim" % (JOBS, claimed[0]),
                                                             json=_claim_body()), (409,), "already_claimed")


@pytest.mark.parametrize("name,job_id", [
    ("server: non-UUID job id", "12345"),
    ("server: path traversal in job id", "..%2F..%2F..%2Fetc%2Fpasswd"),
    ("server: SQL in job id", "1'%20OR%20'1'='1"),
    ("server: unknown (random) job id", str(uuid.uuid4())),
])
def test_bad_job_ids(srv, name, job_id):
    api = Api(srv.base_url, srv.alice)
    _case(name, api.call("GET", "%s/%s" % (JOBS, job_id)), (400, 404))
    _case(name + " (claim)", api.call("POST", "%s/%s/claim" % (JOBS, job_id), json=_claim_body()),
          (400, 404))


def test_ping_errors(srv, claimed):
    api = Api(srv.base_url, srv.alice)
    job_id, lease = claimed
    path = "%s/%s/ping" % (JOBS, job_id)
    good = {"lease_id": lease, "runner_name": "r", "runner_version": "0", "stage": "training",
            "fraction": 0.5, "eta_seconds": 10, "message": "m", "cells_done": 1, "cells_total": 2}
    _case("server: ping with an unknown stage", api.call("POST", path, json=dict(good, stage="hacking")), (400,))
    _case("server: ping fraction of the wrong type", api.call("POST", path, json=dict(good, fraction="half")),
          (400,))
    _case("server: ping with someone else's lease", api.call("POST", path, json=dict(good,
                                                                                     lease_id=str(uuid.uuid4()))),
          (409,), "lease_lost")
    r = api.call("POST", path, json=good)
    assert r.status_code == 200, error_text(r)


def _upload(api, job_id, lease, result, model, result_ctype="application/json"):
    files = {"lease_id": (None, lease), "result": ("result.json", result, result_ctype),
             "model": ("model.history", model, "application/octet-stream")}
    return api.call("PUT", "%s/%s/result" % (JOBS, job_id), files=files)


MAGIC = b"\x6a\xea\x72\x3d"


def test_upload_errors(srv, claimed):
    api = Api(srv.base_url, srv.alice)
    job_id, lease = claimed
    path = "%s/%s/result" % (JOBS, job_id)
    ok_json = json.dumps({"accuracy": 50.0})
    _case("server: upload sent as JSON, not multipart", api.call("PUT", path, json={"lease_id": lease}), (415,))
    _case("server: upload without the model part", api.call("PUT", path, files={
        "lease_id": (None, lease), "result": ("r.json", ok_json, "application/json")}), (400,))
    _case("server: upload with an extra part", api.call("PUT", path, files={
        "lease_id": (None, lease), "result": ("r.json", ok_json, "application/json"),
        "model": ("m", MAGIC, "application/octet-stream"), "shell": ("x.sh", b"rm -rf /", "text/plain")}),
        (400,))
    _case("server: result part is not JSON", _upload(api, job_id, lease, b"{accuracy: 5", MAGIC + b"\0" * 8),
          (422,))
    _case("server: result part larger than the limit", _upload(api, job_id, lease,
                                                                json.dumps({"x": "y" * RESULT_LIMIT}),
                                                                MAGIC), (413,))
    _case("server: model part larger than the limit", _upload(api, job_id, lease, ok_json,
                                                               MAGIC + b"\0" * (MODEL_LIMIT + 16)), (413,))
    _case("server: upload of 40 MiB (over the request limit)", _upload(
        api, job_id, lease, ok_json, MAGIC + b"\0" * (40 << 20)), (413,))
    _case("server: fake model file (a shell script)", _upload(api, job_id, lease, ok_json,
                                                              b"#!/bin/sh\nrm -rf /\n"), (422,))
    _case("server: result that fails the schema", _upload(api, job_id, lease, ok_json,
                                                          MAGIC + b"\0" * 64), (422,))
    _case("server: upload with a lease that is not ours", _upload(api, job_id, str(uuid.uuid4()), ok_json,
                                                                  MAGIC + b"\0" * 64), (409, 422))
    _case("server: upload with a lease_id that is not a UUID", _upload(api, job_id, "../../x", ok_json,
                                                                      MAGIC), (400,))


def test_dataset_and_document_errors(srv):
    api = Api(srv.base_url, srv.alice)
    one_class = example_dataset_json()
    one_class["classes"] = one_class["classes"][:1]
    one_class["name"] = "one class"
    r = api.call("POST", "/datasets", json=one_class)
    assert r.status_code in (201, 400, 422), error_text(r)
    if r.status_code == 201:  # AB lets one build it; evaluation refuses it (ours refuses it at once, 422)
        r = api.call("POST", "/datasets/%s/evaluate" % r.json()["dataset_id"], json={"eval_location": "remote"})
    _case("server: dataset with one class", r, (400, 422))
    thin = example_dataset_json()
    thin["classes"][1]["recordings"] = thin["classes"][1]["recordings"][:1]
    thin["name"] = "thin class"
    r = api.call("POST", "/datasets", json=thin)
    assert r.status_code in (201, 400, 422), error_text(r)
    if r.status_code == 201:
        r = api.call("POST", "/datasets/%s/evaluate" % r.json()["dataset_id"], json={"eval_location": "remote"})
    _case("server: class with one recording", r, (400, 422))
    _case("server: dataset that is not JSON", api.call("POST", "/datasets", data=b"classes=1",
                                                      headers={"Content-Type": "application/json"}), (400,))
    bad = example_dataset_json()
    bad["classes"][0]["recordings"][0] = "not-an-mbid"
    _case("server: dataset with a non-MBID recording", api.call("POST", "/datasets", json=bad), (400,))
    _case("server: evaluate with bad options", api.call("POST", "/datasets/%s/evaluate" % srv.dataset, json={
        "eval_location": "remote", "options": {"c_values": ["x"]}}), (400,))
    _case("server: evaluate with an unknown option", api.call("POST", "/datasets/%s/evaluate" % srv.dataset,
                                                             json={"options": {"kernel": "evil"}}), (400,))
    _case("server: low-level document that is a list", api.call("PUT", "/low-level/%s" % uuid.uuid4(),
                                                               json=[1, 2, 3]), (400, 422))
    _case("server: low-level path traversal", api.call("PUT", "/low-level/..%2F..%2Fetc%2Fpasswd",
                                                       json={"lowlevel": {}}), (400, 404))
    ids = ";".join(str(uuid.uuid4()) for _ in range(26))
    _case("server: low-level bulk with 26 ids", api.call("GET", "/low-level", params={"recording_ids": ids}),
          (400,))
    _case("server: low-level bulk with a bad id", api.call("GET", "/low-level",
                                                          params={"recording_ids": "x;../../etc"}), (400,))


def test_nan_document_does_not_break_the_server(srv):
    """JSON with NaN (Python's json accepts it) must be refused or served, never a 500."""
    api = Api(srv.base_url, srv.alice)
    mbid = str(uuid.uuid4())
    r = api.call("PUT", "/low-level/%s" % mbid, data=b'{"lowlevel": {"x": {"mean": NaN}}}',
                 headers={"Content-Type": "application/json"})
    with record.case("bad_input", "server: low-level document with NaN") as c:
        c.message = error_text(r) if r.status_code >= 400 else "HTTP %d (stored)" % r.status_code
        assert r.status_code < 500, c.message
        got = api.call("GET", "/low-level", params={"recording_ids": mbid})
        c.message += "; bulk read: HTTP %d" % got.status_code
        assert got.status_code < 500, c.message


# -- security ---------------------------------------------------------------------------

def test_database_stores_only_token_hashes(srv):
    with record.case("security", "server database holds token hashes only") as c:
        data = srv.db_path.read_bytes()
        for suffix in ("-wal", "-shm"):
            side = srv.db_path.with_name(srv.db_path.name + suffix)
            if side.exists():
                data += side.read_bytes()
        text = data.decode("latin-1")
        assert not leaks.find_in_text(text, [srv.alice, srv.mallory]), "a token is stored in clear"
        con = sqlite3.connect(str(srv.db_path))
        stored = {row[0] for row in con.execute("SELECT token_sha256 FROM users")}
        con.close()
        assert hashlib.sha256(srv.alice.encode()).hexdigest() in stored
        c.message = "users.token_sha256 only; no token text in the DB file or its WAL"


def test_other_owner_can_neither_read_nor_change(srv, claimed):
    job_id, lease = claimed
    mal = Api(srv.base_url, srv.mallory)
    attempts = [
        ("read the job", "GET", "%s/%s" % (JOBS, job_id), {}),
        ("claim the job", "POST", "%s/%s/claim" % (JOBS, job_id), {"json": _claim_body()}),
        ("ping with the stolen lease", "POST", "%s/%s/ping" % (JOBS, job_id), {"json": {
            "lease_id": lease, "runner_name": "m", "runner_version": "0", "stage": "training",
            "fraction": 0.1, "eta_seconds": None, "message": "pwned", "cells_done": 0, "cells_total": 1}}),
        ("fail the job", "POST", "%s/%s/fail" % (JOBS, job_id), {"json": {"lease_id": lease, "reason": "x"}}),
        ("cancel the job", "POST", "%s/%s/cancel" % (JOBS, job_id), {}),
        ("download the features", "GET", "%s/%s/features" % (JOBS, job_id), {}),
        ("download the model", "GET", "%s/%s/model" % (JOBS, job_id), {}),
        ("upload a result", "PUT", "%s/%s/result" % (JOBS, job_id), {"files": {
            "lease_id": (None, lease), "result": ("r", "{}", "application/json"),
            "model": ("m", MAGIC, "application/octet-stream")}}),
        ("evaluate the dataset", "POST", "/datasets/%s/evaluate" % srv.dataset, {"json": {}}),
    ]
    for what, method, path, kw in attempts:
        r = mal.call(method, path, **kw)
        with record.case("security", "other owner cannot " + what) as c:
            c.message = error_text(r)
            assert r.status_code == 404, c.message
    listed = mal.call("GET", JOBS, params={"status": "pending", "location": "remote"}).json()["jobs"]
    with record.case("security", "other owner's job list shows none of alice's jobs") as c:
        assert not listed, listed
    job = srv.job(srv.alice, job_id)
    with record.case("security", "alice's job unchanged after the attempts") as c:
        assert job["status"] == "running" and (job.get("progress") or {}).get("message") != "pwned", job


def test_other_owner_cannot_replace_a_document_of_anothers_dataset(srv):
    """Documents are what jobs train on: letting mallory overwrite the low-level document
    of a recording in alice's dataset would poison alice's next model."""
    alice = Api(srv.base_url, srv.alice)
    mbid = example_dataset_json()["classes"][0]["recordings"][0]
    before = alice.call("GET", "/low-level", params={"recording_ids": mbid}).json()[mbid]["0"]
    r = Api(srv.base_url, srv.mallory).call("PUT", "/low-level/%s" % mbid,
                                            json={"lowlevel": {"poisoned": {"mean": 1.0}}})
    after = alice.call("GET", "/low-level", params={"recording_ids": mbid}).json()[mbid]["0"]
    if after != before:  # put it back, or the module's later jobs train on the poisoned document
        alice.call("PUT", "/low-level/%s" % mbid, json=before)
    with record.case("security", "other owner cannot replace a document in alice's dataset") as c:
        c.message = error_text(r) if r.status_code >= 400 else "HTTP %d: replaced" % r.status_code
        assert after == before, "mallory's PUT replaced the document alice's dataset trains on (%s)" % c.message


# -- uploads of a genuine result --------------------------------------------------------

def _genuine(srv):
    """Claim a fresh tiny-grid job and train it in-process on the server's own bundle."""
    import abrunnerd.trainer as trainer
    from abrunnerd.trainer.bundle import dataset_from_bundle
    from abrunnerd.gaia.history import dumps_history

    api = Api(srv.base_url, srv.alice)
    job_id = srv.submit(srv.dataset, *GRID)
    lease = api.call("POST", "%s/%s/claim" % (JOBS, job_id), json=_claim_body()).json()["lease_id"]
    details = api.call("GET", "%s/%s" % (JOBS, job_id)).json()
    bundle = api.call("GET", "%s/%s/features" % (JOBS, job_id)).content
    gt = {m: c["name"] for c in details["dataset"]["classes"] for m in c["recordings"]}
    res = trainer.train(dataset_from_bundle(bundle, "x", gt),
                        trainer.TrainOptions.from_job_options(details["options"], seed=details["seed"]), workers=1)
    return api, job_id, lease, res.to_result_json(), dumps_history(res.model.steps)


def test_genuine_upload_then_replays(srv):
    api, job_id, lease, result, model = _genuine(srv)
    js = json.dumps
    wrong_class = json.loads(js(result))
    cm = wrong_class["confusion_matrix"]
    first = sorted(cm)[0]
    cm["no such class"] = cm.pop(first)
    _case("server: result whose classes differ from the dataset's",
          _upload(api, job_id, lease, js(wrong_class), model), (422,))
    bad_acc = dict(result, accuracy=min(100.0, result["accuracy"] + 7.5))
    _case("server: accuracy inconsistent with the confusion matrix",
          _upload(api, job_id, lease, js(bad_acc), model), (422,), "accuracy_mismatch")
    outside = json.loads(js(result))
    outside["parameters"]["model"]["C"] = 29
    _case("server: best parameters outside the job's grid", _upload(api, job_id, lease, js(outside), model),
          (422,), "outside_grid")
    _case("server: fake model file (no Gaia magic)", _upload(api, job_id, lease, js(result),
                                                             b"PK\x03\x04 not a history" * 8), (422,), "bad_model")
    r = _upload(api, job_id, lease, js(result), model)
    with record.case("bad_input", "server: genuine upload, then the same upload replayed") as c:
        assert r.status_code == 201, error_text(r)
        again = _upload(api, job_id, lease, js(result), model)
        c.message = "first HTTP %d, replay HTTP %d %s" % (r.status_code, again.status_code, again.json())
        assert again.status_code == 200 and again.json().get("replayed") is True, c.message
    changed = dict(result, seed=result.get("seed", 42))
    changed["dataset"] = dict(result.get("dataset") or {}, descriptors_dropped=12345)
    _case("server: a different result replayed for a finished job",
          _upload(api, job_id, lease, js(changed), model), (409, 422))
    _case("server: result for another owner's job", _upload(Api(srv.base_url, srv.mallory), job_id, lease,
                                                          js(result), model), (404,))
    got = api.call("GET", "%s/%s/model" % (JOBS, job_id))
    with record.case("bad_input", "server: stored model is the genuine one after all attempts") as c:
        assert got.status_code == 200 and got.content == model


def test_fake_model_with_the_magic_is_refused(srv):
    api, job_id, lease, result, model = _genuine(srv)
    r = _upload(api, job_id, lease, json.dumps(result), MAGIC + b"\xff" * 4096)
    _case("server: fake model file with the right magic bytes", r, (422,))
