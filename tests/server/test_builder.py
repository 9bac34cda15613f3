"""Issue 17 item 6: submitting answers at once; the snapshot is built by a build-worker process
(abserver/builder.py), never in a request worker; runners see a job only once it is built.

Real server processes (``abserver serve`` and its supervised build worker, or ``--builders 0``
with ``abserver build-worker`` run by hand), on SQLite and PostgreSQL.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
import sqlalchemy as sa
from helpers import jobflow
from helpers.server import EXAMPLE_DATASET, ServerProcess, _env

from abserver.datasets import MAX_BUNDLE_COLUMNS
from abserver.db import make_engine

BIG = 240  # recordings: a build of a few seconds, long enough to be caught in the middle


@pytest.fixture
def db_url(any_db_url) -> str:
    return any_db_url


def make_dataset_dir(root: Path, recordings: int) -> Path:
    """``recordings`` documents (the example's, under new MBIDs) in two classes."""
    sources = sorted((EXAMPLE_DATASET / "lowlevel").glob("*.json"))
    (root / "lowlevel").mkdir(parents=True)
    classes = [{"name": "a", "recordings": []}, {"name": "b", "recordings": []}]
    for i in range(recordings):
        mbid = str(uuid.uuid4())
        shutil.copy(sources[i % len(sources)], root / "lowlevel" / ("%s.json" % mbid))
        classes[i % 2]["recordings"].append(mbid)
    (root / "dataset.json").write_text(json.dumps({"name": "big", "description": "", "public": False,
                                                   "classes": classes}))
    return root


def evaluate(srv, token, dataset, **body) -> requests.Response:
    body.setdefault("options", {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]})
    return requests.post(srv.url("/datasets/%s/evaluate" % dataset), json=body, headers=srv.auth(token), timeout=60)


def listed(srv, token):
    r = requests.get(srv.url("/datasets/evaluation/jobs"), params={"status": "pending", "location": "remote"},
                     headers=srv.auth(token), timeout=60)
    assert r.status_code == 200, r.text
    return [j["job_id"] for j in r.json()["jobs"]]


def job_row(srv, job_id):
    engine = make_engine(srv.db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT status, build_owner, build_attempts, error_code, snapshot_id "
                                        "FROM jobs WHERE id = :id"), {"id": job_id}).first()
    finally:
        engine.dispose()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def test_a_job_is_neither_listed_nor_claimable_until_built(db_url, tmp_path):
    """With no build worker running (``--builders 0``) the job stays preparing: not listed, its
    claim and its features answer 409 job_preparing; ``abserver build-worker --once`` builds it."""
    with ServerProcess(tmp_path / "srv", db_url=db_url, args=("--builders", "0")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(owner="alice")
        start = time.monotonic()
        r = evaluate(srv, token, dataset)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "preparing"
        job = r.json()["job_id"]
        assert r.headers["Location"].endswith("/datasets/evaluation/jobs/%s" % job)
        details = jobflow.details(srv, token, job)
        assert details["status"] == "preparing" and details["snapshot_id"] is None
        assert details["dataset"]["num_recordings"] == 60, "details show the dataset while preparing"
        assert job not in listed(srv, token)
        claim = jobflow.claim(srv, token, job)
        assert claim.status_code == 409 and claim.json()["code"] == "job_preparing", claim.text
        features = requests.get(srv.url("/datasets/evaluation/jobs/%s/features" % job), headers=srv.auth(token))
        assert features.status_code == 409 and features.json()["code"] == "job_preparing"
        assert "preparing" in srv.admin("jobs").stdout
        time.sleep(1.0)
        assert jobflow.details(srv, token, job)["status"] == "preparing", "nobody builds it in the server"
        assert time.monotonic() - start < 30
        done = srv.admin("build-worker", "--once")
        assert "built 1 job(s)" in done.stderr, done.stderr
        details = jobflow.details(srv, token, job)
        assert details["status"] == "pending" and details["snapshot_id"]
        assert job in listed(srv, token)
        assert jobflow.claim(srv, token, job).status_code == 200


def test_submit_answers_at_once_and_the_supervised_builder_builds_it(db_url, tmp_path):
    """A 240-recording submit answers in well under a second (the build takes seconds), and
    the build worker ``serve`` started makes the job claimable."""
    big = make_dataset_dir(tmp_path / "big", BIG)
    with ServerProcess(tmp_path / "srv", db_url=db_url) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(big, owner="alice")
        start = time.monotonic()
        r = evaluate(srv, token, dataset)
        answered = time.monotonic() - start
        assert r.status_code == 202, r.text
        job = r.json()["job_id"]
        assert job not in listed(srv, token)
        details = srv.wait_built(token, job)
        built = time.monotonic() - start
        assert details["status"] == "pending", details
        assert answered < 2.0 and answered < built / 2, (answered, built)
        assert job in listed(srv, token)
        assert jobflow.claim(srv, token, job).status_code == 200
        assert re.search(r"job %s: built, queued for runners" % job, srv.log_text())


def test_a_failing_build_fails_the_job_with_its_code(db_url, tmp_path):
    """Too wide a bundle is found only by the build: the job ends failed with code too_wide and the
    recording named, in job details, ``abserver jobs`` and the web page's status message."""
    with ServerProcess(tmp_path / "srv", db_url=db_url) as srv:
        token = srv.add_user("wide")
        per_doc = MAX_BUNDLE_COLUMNS // 3
        mbids = []
        for k in range(4):
            mbid = str(uuid.uuid4())
            doc = {"lowlevel": {"d%d_%05d" % (k, i): 1.0 for i in range(per_doc)}}
            assert requests.put(srv.url("/low-level/%s" % mbid), json=doc, headers=srv.auth(token)).status_code == 200
            mbids.append(mbid)
        body = {"name": "wide", "classes": [{"name": "a", "recordings": mbids[:2]},
                                            {"name": "b", "recordings": mbids[2:]}]}
        dataset = requests.post(srv.url("/datasets"), json=body, headers=srv.auth(token)).json()["dataset_id"]
        r = evaluate(srv, token, dataset)
        assert r.status_code == 202, r.text
        job = r.json()["job_id"]
        details = srv.wait_built(token, job)
        assert details["status"] == "failed" and details["error_code"] == "too_wide", details
        assert details["status_msg"].startswith("too_wide: ") and sorted(mbids)[3] in details["status_msg"]
        assert jobflow.claim(srv, token, job).json()["code"] == "job_finished"
        out = srv.admin("jobs").stdout
        assert re.search(r"%s\s+failed" % job, out) and "too_wide: " in out


def test_a_document_gone_before_the_build_fails_it_as_missing(tmp_path):
    with ServerProcess(tmp_path / "srv", args=("--builders", "0")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(owner="alice")
        job = evaluate(srv, token, dataset).json()["job_id"]
        engine = make_engine(srv.db_url)
        with engine.begin() as conn:
            gone = conn.execute(sa.text("SELECT mbid FROM dataset_recordings WHERE dataset_id = :d ORDER BY mbid "
                                        "LIMIT 1"), {"d": dataset}).scalar()
            conn.execute(sa.text("DELETE FROM lowlevel WHERE mbid = :m"), {"m": gone})
        engine.dispose()
        srv.admin("build-worker", "--once")
        details = jobflow.details(srv, token, job)
        assert details["status"] == "failed" and details["error_code"] == "missing_lowlevel", details
        assert gone in details["status_msg"]


def test_submit_refusals_stay_synchronous_4xx(tmp_path):
    """What can be checked at once is still refused by the submit itself, with its code."""
    with ServerProcess(tmp_path / "srv", args=("--builders", "0")) as srv:
        token = srv.add_user("alice")
        mbids = sorted(p.stem for p in (EXAMPLE_DATASET / "lowlevel").glob("*.json"))[:4]
        body = {"name": "x", "classes": [{"name": "a", "recordings": mbids[:2]}, {"name": "b", "recordings": mbids[2:]}]}
        dataset = requests.post(srv.url("/datasets"), json=body, headers=srv.auth(token)).json()["dataset_id"]
        r = evaluate(srv, token, dataset)
        assert r.status_code == 422 and r.json()["code"] == "missing_lowlevel", r.text
        assert mbids[0] in r.json()["message"]
        r = evaluate(srv, token, dataset, options={"c_values": "x"})
        assert r.status_code == 400 and r.json()["code"] == "bad_options", r.text
        r = evaluate(srv, token, str(uuid.uuid4()))
        assert r.status_code == 404
        engine = make_engine(srv.db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM jobs")).scalar() == 0, "no job for a refusal"
        engine.dispose()


def _builder_pid(srv) -> int:
    pids = re.findall(r"started build worker \S+ \(pid (\d+)\)", srv.log_text())
    return int(pids[-1])


def test_a_builder_killed_mid_build_leaves_the_job_to_be_built_again(db_url, tmp_path):
    """kill -9 of the build worker in the middle of a build: nothing was stored, ``serve`` starts
    another which frees the dead one's lease at once, and the job is built (second attempt)."""
    big = make_dataset_dir(tmp_path / "big", BIG)
    with ServerProcess(tmp_path / "srv", db_url=db_url) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(big, owner="alice")
        first = _builder_pid(srv)
        job = evaluate(srv, token, dataset).json()["job_id"]
        wait_for(lambda: job_row(srv, job).build_owner, 60, "the build worker to take the job")
        os.kill(first, signal.SIGKILL)
        row = job_row(srv, job)
        assert row.status == "preparing" and row.snapshot_id is None, "nothing stored by the killed build"
        details = srv.wait_built(token, job)
        assert details["status"] == "pending", details
        row = job_row(srv, job)
        assert row.build_attempts == 2 and row.build_owner is None
        assert _builder_pid(srv) != first
        assert "ended (signal 9)" in srv.log_text()
        engine = make_engine(srv.db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar() == 1
            kinds = [r[0] for r in conn.execute(sa.text("SELECT kind FROM job_events WHERE job_id = :j ORDER BY id"),
                                                {"j": job})]
        engine.dispose()
        assert kinds == ["submitted", "built"], kinds
        assert jobflow.claim(srv, token, job).status_code == 200


def test_sigterm_stops_a_build_promptly_and_gives_the_job_back(tmp_path):
    """A standalone build worker (beside gunicorn started directly) stops within a second or two
    of SIGTERM mid-build; the job is back in the queue, the attempt not counted."""
    big = make_dataset_dir(tmp_path / "big", BIG)
    with ServerProcess(tmp_path / "srv", args=("--builders", "0")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(big, owner="alice")
        job = evaluate(srv, token, dataset).json()["job_id"]
        proc = subprocess.Popen([sys.executable, "-m", "abserver", "build-worker", "--db", srv.db_url,
                                 "--build-poll", "0.1"], env=_env(), stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: job_row(srv, job).build_owner, 60, "the build worker to take the job")
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            start = time.monotonic()
            proc.wait(timeout=10)
            assert time.monotonic() - start < 3.0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, proc.stderr.read()
        row = job_row(srv, job)
        assert (row.status, row.build_owner, row.build_attempts, row.snapshot_id) == ("preparing", None, 0, None)
        srv.admin("build-worker", "--once")
        assert jobflow.details(srv, token, job)["status"] == "pending"


def test_two_builders_build_each_job_once(db_url, tmp_path):
    """Builders take jobs with a conditioned UPDATE: with two of them, every job is built exactly once."""
    with ServerProcess(tmp_path / "srv", db_url=db_url, args=("--builders", "2")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(owner="alice")
        jobs = [evaluate(srv, token, dataset, seed=seed).json()["job_id"] for seed in range(6)]
        for job in jobs:
            assert srv.wait_built(token, job)["status"] == "pending"
        engine = make_engine(srv.db_url)
        with engine.connect() as conn:
            built = conn.execute(sa.text("SELECT job_id, COUNT(*) FROM job_events WHERE kind = 'built' "
                                         "GROUP BY job_id")).fetchall()
        engine.dispose()
        assert sorted(built) == sorted((j, 1) for j in jobs)
        assert len(re.findall(r"started build worker", srv.log_text())) == 2


def test_a_canceled_preparing_job_is_not_built(tmp_path):
    with ServerProcess(tmp_path / "srv", args=("--builders", "0")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(owner="alice")
        job = evaluate(srv, token, dataset).json()["job_id"]
        r = requests.post(srv.url("/datasets/evaluation/jobs/%s/cancel" % job), headers=srv.auth(token))
        assert r.status_code == 200 and r.json()["status"] == "canceled"
        assert "built 0 job(s)" in srv.admin("build-worker", "--once").stderr
        assert jobflow.details(srv, token, job)["status"] == "canceled"


def test_admin_submit_builds_in_its_own_process_with_stage_progress(tmp_path):
    """``abserver submit`` is no request worker: it builds through the same code, showing each stage,
    and the job is pending when it returns; a failed build says why and exits 65."""
    with ServerProcess(tmp_path / "srv", args=("--builders", "0")) as srv:
        srv.add_user("alice")
        dataset = srv.import_dataset(owner="alice")
        done = srv.admin("submit", dataset, "--c-values", "1")
        job = done.stdout.strip()
        for stage in ("reading documents: 60/60", "preparing documents: 60/60",
                      "encoding the features bundle: 60/60"):
            assert stage in done.stderr, done.stderr
        assert re.search(r"%s\s+pending" % job, srv.admin("jobs").stdout)


@settings(max_examples=200, deadline=None)
@given(flag=st.sampled_from(["--build-poll", "--build-lease-seconds", "--builders", "--builder-id", "--recover"]),
       value=st.one_of(st.text(max_size=12), st.integers(-10 ** 6, 10 ** 6).map(str),
                       st.floats(allow_nan=True, allow_infinity=True).map(str)))
def test_build_flags_take_their_range_or_refuse_with_usage(flag, value):
    """The build workers' flags (hostile input from a command line or the settings file): a value in
    its documented range, or argparse's usage error (exit 2), never a traceback."""
    from abserver import builder
    from abserver.cli import build_parser

    command = "serve" if flag == "--builders" else "build-worker"
    if flag in ("--builder-id", "--recover") and value.startswith("-"):
        value = "x" + value  # argparse would read it as another option
    try:
        args = build_parser().parse_args([command, flag + "=" + value])
    except SystemExit as exc:
        assert exc.code == 2
        return
    if flag == "--build-poll":
        assert builder.MIN_POLL_SECONDS <= args.build_poll <= builder.MAX_POLL_SECONDS
    elif flag == "--build-lease-seconds":
        assert builder.MIN_LEASE_SECONDS <= args.build_lease_seconds <= builder.MAX_LEASE_SECONDS
    elif flag in ("--builder-id", "--recover"):  # stored in jobs.build_owner (64 characters)
        given_id = args.builder_id if flag == "--builder-id" else args.recover[0]
        assert 1 <= len(given_id) <= 64 and given_id.isprintable() and " " not in given_id
    else:
        assert 0 <= args.builders <= 16


def test_a_build_renews_its_lease_and_stops_when_the_job_is_canceled(tmp_path):
    """The heartbeat renews the build lease while the build runs (a quarter lease apart) and finds
    a cancel: the build stops without storing anything."""
    big = make_dataset_dir(tmp_path / "big", 2 * BIG)
    with ServerProcess(tmp_path / "srv", args=("--build-lease-seconds", "5")) as srv:
        token = srv.add_user("alice")
        dataset = srv.import_dataset(big, owner="alice")
        job = evaluate(srv, token, dataset).json()["job_id"]
        engine = make_engine(srv.db_url)

        def lease():
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT build_lease_expires FROM jobs WHERE id = :j"), {"j": job}).scalar()

        first = wait_for(lease, 60, "the build worker to take the job")
        renewed = wait_for(lambda: (lease() or 0) > first and lease(), 10, "the lease to be renewed")
        assert renewed > first
        r = requests.post(srv.url("/datasets/evaluation/jobs/%s/cancel" % job), headers=srv.auth(token))
        assert r.status_code == 200
        wait_for(lambda: "job %s: canceled or taken over; nothing stored" % job in srv.log_text(), 30,
                 "the build to notice the cancel")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar() == 0
        engine.dispose()
        assert jobflow.details(srv, token, job)["status"] == "canceled"
