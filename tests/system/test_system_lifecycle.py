"""The package as users meet it, on Debian 11, 12 and 13 with a real systemd, journald,
system bus and apt: install → idle without a token (journal line, STATUS, no restarts,
watchdog fed) → files, modes, hardening exposure, status over the bus (root and a plain
user), the sysvinit script → configure → a real job claimed and trained → journal
fields, STATUS line, abrunnerctl status → kill -9 mid-training resumes → upgrade mid-job
resumes → result and .history on the server → an upgrade leaves a stopped runner
stopped → purge leaves nothing. The stages run inside the container
(scenarios/lifecycle.py); the job server runs here on the loopback, which the
container shares.
"""
import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from helpers.server import EXAMPLE_DATASET
from syshelpers import SUITES

SCENARIO = str(Path(__file__).parent / "scenarios" / "lifecycle.py")
# A grid that keeps the training busy for tens of seconds inside the container on a
# loaded 2-core machine (2 workers), so kill -9 and the upgrade land mid-training:
# AB's 5 preprocessings x 21 C x 10 gamma x 2 kernels x 5 folds = 10,500 cells on the
# 60-recording sample (AB's default grid has every other C: 5,500 cells, ~15 s here).
GRID = ["--preprocessing", "basic", "lowlevel", "nobands", "normalized", "gaussianized",
        "--c-values"] + [str(c) for c in range(-5, 16)] + \
       ["--gamma-values"] + [str(g) for g in range(-15, 4, 2)]
HISTORY_MAGIC = b"\x6a\xea\x72\x3d"


def _prepare(tmp_path: Path, debs: dict, params: dict) -> tuple:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for key in ("first", "upgrade"):
        shutil.copy(debs[key], src)
    params = dict(params, debs={k: os.path.basename(debs[k]) for k in ("first", "upgrade")},
                  upgrade_version=debs["upgrade_version"])
    (src / "params.json").write_text(json.dumps(params))
    return str(src), str(out)


def _report(out: str, suite: str, result) -> dict:
    path = Path(out) / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["sandbox_seconds"] = round(result.seconds, 1)
    print("\n[%s] %.1f s in the sandbox; stages: %s" % (suite, result.seconds, report.get("stages")))
    print("[%s] observed: %s" % (suite, json.dumps(report.get("observed"), default=str)[:20000]))
    timings = os.environ.get("ABRUNNERD_SYSTEM_TIMINGS")
    if timings:  # collected by whoever wants the figures (docs/packaging.md has a table)
        with open(timings, "a") as f:
            f.write(json.dumps({"suite": suite, "sandbox_seconds": report["sandbox_seconds"],
                                "stages": report.get("stages"),
                                "exposure": (report.get("observed") or {}).get("exposure")}) + "\n")
    return report


@pytest.mark.system
def test_debconf_token(sandbox, debs, tmp_path):
    """A preseeded debconf token is written 0640 root:abrunner and not kept by debconf."""
    src, out = _prepare(tmp_path, debs, {"server_url": "http://127.0.0.1:9", "token": "preseeded-" + "x" * 20,
                                         "job_id": "none",
                                         "stages": ["preseed", "install", "debconf_token", "purge"]})
    r = sandbox.run("bookworm", SCENARIO, src=src, out=out, timeout=600)
    _report(out, "bookworm", r)
    assert r.returncode == 0, "scenario failed (exit %d):\n%s\n%s" % (r.returncode, r.stdout[-8000:],
                                                                       r.stderr[-4000:])


@pytest.mark.system
@pytest.mark.parametrize("suite", SUITES)
def test_lifecycle(suite, sandbox, debs, server_factory, tmp_path):
    srv = server_factory()
    token = srv.add_user("owner-%s" % suite)
    dataset_id = srv.import_dataset(EXAMPLE_DATASET, owner="owner-%s" % suite)
    job_id = srv.submit(dataset_id, "--remote", *GRID)
    server_root = srv.base_url[:-len("/api/v1")] if srv.base_url.endswith("/api/v1") else srv.base_url
    src, out = _prepare(tmp_path, debs, {"server_url": server_root, "token": token, "job_id": job_id})

    r = sandbox.run(suite, SCENARIO, src=src, out=out, timeout=900)
    report = _report(out, suite, r)
    failed = report.get("failed") or {}
    assert r.returncode == 0, "scenario failed on %s (exit %d) in stage %s: %s\n%s\n%s\n--- server log ---\n%s" % (
        suite, r.returncode, failed.get("stage"), failed.get("error"), r.stdout[-8000:], r.stderr[-4000:],
        srv.log_text()[-3000:])
    assert token not in r.stdout + r.stderr, "the token appeared in the scenario's output"

    # the server's own view, independent of what the container saw
    job = requests.get(srv.url("/datasets/evaluation/jobs/" + job_id), headers=srv.auth(token), timeout=30)
    assert job.status_code == 200 and job.json()["status"] == "done", job.text[:2000]
    assert job.json()["result"]["accuracy"] > 0
    model = requests.get(srv.url("/datasets/evaluation/jobs/%s/model" % job_id), headers=srv.auth(token),
                         timeout=30)
    assert model.status_code == 200 and model.content[:4] == HISTORY_MAGIC
    kill9, upgrade = report["observed"]["kill9"], report["observed"]["upgrade"]
    assert kill9["resumed_at"] >= kill9["done_before"] and upgrade["resumed_at"] >= upgrade["done_before"]
