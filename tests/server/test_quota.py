"""Per-owner storage quotas (issue 17, item 4): everything an owner stores counts, and every
path that stores something refuses at the quota with ``413 quota_exceeded`` (CLI: exit 65),
naming used and limit and what to do; nothing of a refused store is kept.

Real server process, on SQLite and PostgreSQL. Each test uses its own users, so the
quota (3 MB per owner, server-wide) starts empty for them.
"""
import json
import random
import shutil
import uuid

import pytest
import requests
from helpers.jobflow import claim, details, example_model, new_job, plausible_result, upload
from helpers.server import EXAMPLE_DATASET, ServerProcess
from helpers.web import WebSession

from helpers.databases import DB_PARAMS, NO_SPOT, db_url

QUOTA = 3000000


@pytest.fixture(scope="module", params=DB_PARAMS)
def srv(request, tmp_path_factory):
    tmp_dir = tmp_path_factory.mktemp("quota")
    server = ServerProcess(tmp_dir, db_url=db_url(request, tmp_dir),
                           args=NO_SPOT + ("--quota-bytes", str(QUOTA))).start()
    try:
        yield server
    finally:
        server.stop()


def _user(srv) -> tuple:
    name = "u" + uuid.uuid4().hex[:10]
    return name, srv.add_user(name)


def storage(srv, token) -> dict:
    r = requests.get(srv.url("/storage"), headers=srv.auth(token), timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["used_bytes"] == sum(body["by_kind"].values())
    return body


def put_noise(srv, token, values: int, seed: int) -> requests.Response:
    rng = random.Random(seed)
    doc = {"lowlevel": {"noise": [rng.random() for _ in range(values)]}}
    return requests.put(srv.url("/low-level/%s" % uuid.uuid4()), json=doc, headers=srv.auth(token), timeout=60)


def fill(srv, token, leave: int) -> int:
    """Store noise documents until less than ``leave`` bytes of the quota are free; the room left."""
    shrink, seed = 1, 0
    while True:
        st = storage(srv, token)
        room = st["quota_bytes"] - st["used_bytes"]
        if room < leave:
            return room
        seed += 1
        values = max(10, min(15000, int((room - leave / 2) / 9 / shrink)))
        r = put_noise(srv, token, values, seed)
        if r.status_code == 413:
            shrink *= 2
        else:
            assert r.status_code == 200, r.text


def assert_quota_refusal(r: requests.Response) -> dict:
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["code"] == "quota_exceeded", body
    assert body["quota_bytes"] == QUOTA and body["used_bytes"] + body["adding_bytes"] > QUOTA
    assert "over your quota of 3.0 MB" in body["message"] and "raise quota_bytes" in body["message"]
    return body


def test_document_upload_is_refused_at_the_quota_and_the_other_owner_is_not(srv):
    _, bob = _user(srv)
    _, alice = _user(srv)
    for seed in range(100):
        r = put_noise(srv, bob, 15000, seed)
        if r.status_code != 200:
            break
    body = assert_quota_refusal(r)
    assert "the document of" in body["message"]
    st = storage(srv, bob)
    assert st["used_bytes"] <= QUOTA and st["by_kind"]["documents"] == st["used_bytes"]
    assert st["used_bytes"] == body["used_bytes"]  # nothing of the refused document was kept
    assert put_noise(srv, alice, 100, 1).status_code == 200


def _copy_dataset(tmp_path, name="copy"):
    """The example dataset under fresh MBIDs, as an AB-form import directory."""
    data = json.loads((EXAMPLE_DATASET / "dataset.json").read_text())
    data.pop("id", None)
    data["name"] = name
    (tmp_path / "lowlevel").mkdir(parents=True)
    mapping = {}
    for cls in data["classes"]:
        cls["recordings"] = [mapping.setdefault(m, str(uuid.uuid4())) for m in cls["recordings"]]
    for old, new in mapping.items():
        shutil.copy(EXAMPLE_DATASET / "lowlevel" / ("%s.json" % old), tmp_path / "lowlevel" / ("%s.json" % new))
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    return data


def test_import_dataset_cli_is_refused_whole_at_the_quota(srv, tmp_path):
    name, token = _user(srv)
    fill(srv, token, 1000000)  # the example's documents take 1.25 MB
    before = storage(srv, token)
    _copy_dataset(tmp_path)
    done = srv.admin("import-dataset", str(tmp_path), "--owner", name, "--quota-bytes", str(QUOTA), check=False)
    assert done.returncode == 65, done.stderr
    assert "storage quota exceeded" in done.stderr and "nothing of it was stored" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert storage(srv, token) == before  # not one document or the dataset kept


def test_gaia_class_folder_import_is_refused_at_the_quota(srv, tmp_path):
    name, token = _user(srv)
    fill(srv, token, 1000000)
    before = storage(srv, token)
    data = json.loads((EXAMPLE_DATASET / "dataset.json").read_text())
    for cls in data["classes"]:
        folder = tmp_path / "folders" / cls["name"].replace("/", "_")
        folder.mkdir(parents=True)
        for mbid in cls["recordings"]:
            shutil.copy(EXAMPLE_DATASET / "lowlevel" / ("%s.json" % mbid), folder / ("track-%s.json" % mbid[:8]))
    done = srv.admin("import-dataset", str(tmp_path / "folders"), "--owner", name, "--quota-bytes", str(QUOTA),
                     check=False)
    assert done.returncode == 65 and "storage quota exceeded" in done.stderr, done.stderr
    assert storage(srv, token) == before
    ok = srv.admin("import-dataset", str(tmp_path / "folders"), "--owner", name, "--quota-bytes", "0", check=False)
    assert ok.returncode == 0, ok.stderr  # the same import without a quota: the refusal was the quota's


def test_dataset_creation_counts_its_definition(srv):
    _, token = _user(srv)
    fill(srv, token, 200000)
    recordings = [str(uuid.uuid4()) for _ in range(12000)]  # ~470 kB of class lists
    body = {"name": "big", "classes": [{"name": "a", "recordings": recordings[:6000]},
                                       {"name": "b", "recordings": recordings[6000:]}]}
    r = requests.post(srv.url("/datasets"), json=body, headers=srv.auth(token), timeout=60)
    assert "dataset 'big'" in assert_quota_refusal(r)["message"]
    small = {"name": "small", "classes": [{"name": "a", "recordings": recordings[:2]},
                                          {"name": "b", "recordings": recordings[2:4]}]}
    r = requests.post(srv.url("/datasets"), json=small, headers=srv.auth(token), timeout=60)
    assert r.status_code == 201, r.text


def test_a_snapshot_over_the_quota_fails_its_job_and_stores_nothing(srv):
    """The bundle's size is known once built: the build worker (API, web) or the admin CLI's
    own build refuses to store it, and the job fails with ``quota_exceeded``."""
    name, token = _user(srv)
    dataset = srv.import_dataset(owner=name)
    fill(srv, token, 60000)  # the example's bundle for this grid takes ~136 kB
    before = storage(srv, token)
    opts = {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]}
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset), json={"options": opts}, headers=srv.auth(token),
                      timeout=120)
    assert r.status_code == 202, r.text
    job = srv.wait_built(token, r.json()["job_id"])
    assert (job["status"], job["error_code"]) == ("failed", "quota_exceeded"), job
    assert "snapshot of dataset %s" % dataset in job["status_msg"] and "raise quota_bytes" in job["status_msg"]
    assert storage(srv, token) == before
    done = srv.admin("submit", dataset, "--c-values", "1", "--quota-bytes", str(QUOTA), check=False)
    assert done.returncode == 65 and "storage quota exceeded" in done.stderr, done.stderr
    assert storage(srv, token) == before
    web = WebSession(srv.base_url.rsplit("/api/v1", 1)[0])  # the owner's web pages submit too
    assert web.sign_in(token).status_code in (302, 303)
    page = web.post("/datasets/%s/submit" % dataset, {"c_values": "1", "gamma_values": "-3", "preprocessing": "basic",
                                                      "seed": "42", "location": "remote"}, csrf_from="/datasets")
    assert page.status_code == 303, page.text[-2000:]
    web_job = srv.wait_built(token, page.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert web_job["error_code"] == "quota_exceeded", web_job
    assert storage(srv, token) == before


def test_submit_without_room_for_the_snapshot_is_refused_at_once(srv):
    """No room left for even the snapshot's definition: 413 from the submit itself, no job queued."""
    name, token = _user(srv)
    dataset = srv.import_dataset(owner=name)
    fill(srv, token, 500)  # a snapshot's definition of the example dataset is a few kB
    before, jobs_before = storage(srv, token), srv.admin("jobs").stdout
    r = requests.post(srv.url("/datasets/%s/evaluate" % dataset), json={"options": {"c_values": [1]}},
                      headers=srv.auth(token), timeout=120)
    assert "snapshot of dataset %s" % dataset in assert_quota_refusal(r)["message"]
    assert srv.admin("jobs").stdout == jobs_before  # no job queued
    assert storage(srv, token) == before


def test_result_upload_is_refused_at_the_quota_and_the_job_stays_open(srv):
    name, token = _user(srv)
    dataset = srv.import_dataset(owner=name)
    job = new_job(srv, token, dataset)
    lease = claim(srv, token, job).json()["lease_id"]
    fill(srv, token, len(example_model()) // 2)
    before = storage(srv, token)
    r = upload(srv, token, job, lease, plausible_result(details(srv, token, job)))
    assert "result and model of job %s" % job in assert_quota_refusal(r)["message"]
    assert storage(srv, token) == before
    assert details(srv, token, job)["status"] == "running"


def test_a_bundle_shared_by_two_owners_counts_fully_for_each(srv):
    """The documented rule: a bundle two owners' snapshots share counts its full size for each."""
    users = [_user(srv) for _ in range(2)]
    opts = {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]}
    sizes = []
    for name, token in users:
        dataset = srv.import_dataset(owner=name)
        new_job(srv, token, dataset, options=opts)
        new_job(srv, token, dataset, options=opts)  # the same snapshot again: not counted twice
        sizes.append(storage(srv, token)["by_kind"]["bundles"])
    job_sizes = [claim(srv, token, new_job(srv, token, srv.import_dataset(owner=name), options=opts)).json()
                 ["features_size"] for name, token in users]
    assert sizes[0] == sizes[1] == job_sizes[0] == job_sizes[1] > 0, (sizes, job_sizes)


def test_users_command_and_storage_path_show_the_usage(srv):
    name, token = _user(srv)
    put_noise(srv, token, 2000, 5)
    st = storage(srv, token)
    assert st["username"] == name and st["quota_bytes"] == QUOTA and st["free_bytes"] == QUOTA - st["used_bytes"]
    line = next(l for l in srv.admin("users", "--quota-bytes", str(QUOTA)).stdout.splitlines() if l.startswith(name))
    assert "stores %.1f MB of 3.0 MB" % (st["used_bytes"] / 1e6) in line and "documents" in line


@pytest.mark.parametrize("value", ["-1", str((1 << 50) + 1), "1e9", "2G", "", "0x10"])
def test_quota_flag_out_of_range_is_one_usage_line(srv, value):
    """--quota-bytes is range-checked like the settings file's quota_bytes (0 to 2^50)."""
    name, _ = _user(srv)
    commands = (["users"], ["import-dataset", str(EXAMPLE_DATASET), "--owner", name], ["submit", str(uuid.uuid4())])
    for command in commands:
        done = srv.admin(*command, "--quota-bytes", value, check=False)
        assert done.returncode == 2 and "--quota-bytes: must be a number of bytes from 0 (no quota)" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
