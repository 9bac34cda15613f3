"""The daemon on the oldest runtime it supports (Python 3.8, numpy 1.17, scikit-learn
0.22, requests 2.22, PyYAML 5.3: `tools/compat-venv floor`) trains a real job from the
real server (which runs on the test environment's Python) and uploads it."""
import os
import subprocess

import pytest

from runner.conftest import GRID_SMALL, ROOT, server_root, wait_job_status


@pytest.fixture(scope="module")
def floor_python():
    done = subprocess.run([os.path.join(ROOT, "tools", "compat-venv"), "floor"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        reason = "tools/compat-venv floor failed (%d): %s" % (done.returncode, done.stderr.decode()[-500:])
        if os.environ.get("ABRUNNERD_COMPAT") == "required":
            pytest.fail(reason)
        pytest.skip(reason)
    return done.stdout.decode().strip().splitlines()[-1]


def test_daemon_on_the_floor_runtime(owner, daemon_factory, floor_python):
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    d = daemon_factory({"server_url": server_root(srv)}, token=token)
    d.python = floor_python
    d.start("--once")
    assert d.wait(timeout=600) == 0, d.output()[-3000:]
    runner = wait_job_status(srv, token, job, "done")["result"]["runner"]
    assert runner["python"].startswith("3.8.") and runner["sklearn"].startswith("0.22"), runner
    d.assert_token_never_shown()
