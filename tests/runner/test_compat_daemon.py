"""The daemon on each Ubuntu LTS's own runtime (``tools/compat-venv PROFILE``: that release's
Python, numpy, scipy, scikit-learn, requests, PyYAML, python-daemon) detaches with a pidfile
(the init-script path), claims a real job from the real server (which runs on the test
environment's Python), trains it, uploads the result and stops on SIGTERM."""
import os
import signal
import subprocess

import pytest

from runner.conftest import GRID_SMALL, ROOT, server_root, wait_for, wait_job_status

PROFILES = subprocess.run([os.path.join(ROOT, "tools", "compat-venv"), "--list"], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split()


def compat_python(profile: str) -> str:
    done = subprocess.run([os.path.join(ROOT, "tools", "compat-venv"), profile], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        reason = "tools/compat-venv %s failed (%d): %s" % (profile, done.returncode, done.stderr.decode()[-500:])
        if os.environ.get("ABRUNNERD_COMPAT") == "required" or os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return done.stdout.decode().strip().splitlines()[-1]


def pinned(profile: str, name: str) -> str:
    spec = subprocess.run([os.path.join(ROOT, "tools", "compat-venv"), "--spec", profile], stdout=subprocess.PIPE,
                          universal_newlines=True, check=True).stdout.split()
    return next(s.split("==", 1)[1] for s in spec if s.startswith(name + "=="))


def test_the_matrix_is_the_four_ubuntu_lts_releases():
    assert PROFILES == ["bionic", "focal", "jammy", "noble"]


@pytest.mark.parametrize("profile", PROFILES)
def test_daemon_claims_trains_and_uploads_on_the_release_runtime(owner, daemon_factory, profile, tmp_path):
    python = compat_python(profile)
    srv, token, dataset = owner
    job = srv.submit(dataset, *GRID_SMALL)
    d = daemon_factory({"server_url": server_root(srv), "log_target": "auto"}, token=token)
    d.python = python
    pidfile = str(tmp_path / "abrunnerd.pid")
    d.start("--daemon", "--pidfile", pidfile)
    assert d.wait(timeout=120) == 0, d.output()[-3000:]  # the foreground process returns once detached
    pid = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), what="pidfile"))
    log = os.path.join(d.work_dir, "abrunnerd.log")  # no syslog here: the fallback file
    try:
        details = wait_job_status(srv, token, job, "done")
        wait_for(lambda: "finished: accuracy" in open(log).read(), what="the finished line in the log file")
    finally:
        os.kill(pid, signal.SIGTERM)  # the detached daemon this test started (its id from the pidfile)
    wait_for(lambda: not os.path.exists(pidfile), what="pidfile removed on exit")
    runner = details["result"]["runner"]
    assert runner["python"].startswith(pinned(profile, "python") + "."), runner
    assert runner["sklearn"] == pinned(profile, "scikit-learn"), runner
    assert details["result"]["accuracy"] > 50, details["result"]
    assert token not in open(log).read()
