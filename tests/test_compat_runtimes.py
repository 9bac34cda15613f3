"""The pure parts (trainer, Gaia history format) pass their tests on the oldest and newest runtimes.

``make test`` itself runs on Debian 12's python3 and libraries. This re-runs the trainer and
history unit tests in two more venvs built by ``tools/compat-venv``:

* floor:  Python 3.8 with Ubuntu 20.04's numpy 1.17.4 / scikit-learn 0.22.2 / scipy 1.3.3;
* newest: Python 3.13 with the newest numpy/scipy and scikit-learn < 1.11.

The daemon, D-Bus and journald parts run on Debian 11's, 12's and 13's own packages in the
system tests (tests/system).
"""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PURE_TESTS = ["tests/trainer", "tests/gaia", "tests/predict"]
# The Gaia-reference fidelity, Gaia-forms (3 x 1,728 configurations) and kill/resume tests
# re-run whole grids; they run on the main runtime already and would only add minutes here
# (test_trainer_gaia_inputs covers the Gaia readers and reports on these runtimes). The arm64
# test runs its own (Debian) runtime under qemu.
DESELECT = "not fidelity and not resume_kill and not kill and not gaia_forms and not arm64"
EXPECTED = {"floor": "(3, 8) 1.17.4 0.22.2.post1", "newest": "(3, 13)"}


def _compat_python(profile: str) -> str:
    proc = subprocess.run([str(REPO / "tools" / "compat-venv"), profile], cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["compat-venv failed"])[-1]
        if os.environ.get("CI"):
            pytest.fail("runtime %s required in CI but unavailable: %s" % (profile, why))
        pytest.skip("runtime %s unavailable: %s" % (profile, why))
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("profile", ["floor", "newest"])
def test_trainer_and_history_tests_pass_on_runtime(profile):
    python = _compat_python(profile)
    versions = subprocess.run(
        [python, "-c", "import sys, numpy, sklearn; "
                       "print(tuple(sys.version_info[:2]), numpy.__version__, sklearn.__version__)"],
        stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert versions.startswith(EXPECTED[profile]), versions
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not oracle and not long",
         "-k", DESELECT] + PURE_TESTS,
        cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), timeout=1500)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, "%s (%s):\n%s" % (profile, versions, tail)
    assert " passed" in tail and " failed" not in tail, tail
