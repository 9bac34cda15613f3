"""The pure parts (trainer, Gaia history, predict) on every Ubuntu LTS's own runtime.

``make test`` itself runs on Debian 12's python3 and libraries. This re-runs the trainer,
history and predict unit tests in venvs built by ``tools/compat-venv``, one per Ubuntu LTS with
that release's Python, numpy, scipy and scikit-learn (bionic 3.6/1.13.3/0.19.1 .. noble
3.12/1.26.4/1.4.1), plus the newest of everything (Python 3.13, scikit-learn < 1.11),
and checks that the Gaia-reference grid (ab-real-1, 720 configurations) scores the same,
configuration by configuration, on the oldest and the newest runtime.

The daemon on the same runtimes: tests/runner/test_compat_daemon.py. The daemon, D-Bus
and journald parts on Debian 11's, 12's and 13's own packages: tests/system.
"""
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PURE_TESTS = ["tests/trainer", "tests/gaia", "tests/predict"]
# The Gaia-reference fidelity, Gaia-forms (3 x 1,728 configurations) and kill/resume tests
# re-run whole grids; they run on the main runtime already and would only add minutes here
# (test_trainer_gaia_inputs covers the Gaia readers and reports on these runtimes; the
# reference grid is compared across runtimes below). The arm64 test runs its own (Debian)
# runtime under qemu.
DESELECT = "not fidelity and not resume_kill and not kill and not gaia_forms and not arm64"
UBUNTU = subprocess.run([str(REPO / "tools" / "compat-venv"), "--list"], stdout=subprocess.PIPE,
                        universal_newlines=True, check=True).stdout.split()
AB_REAL_1 = REPO.parent / "shared" / "data" / "ab-real-1"


def _compat_python(profile: str) -> str:
    proc = subprocess.run([str(REPO / "tools" / "compat-venv"), profile], cwd=str(REPO),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["compat-venv failed"])[-1]
        if os.environ.get("CI") or os.environ.get("ABRUNNERD_COMPAT") == "required":
            pytest.fail("runtime %s required in CI but unavailable: %s" % (profile, why))
        pytest.skip("runtime %s unavailable: %s" % (profile, why))
    return proc.stdout.strip().splitlines()[-1]


def _expected_versions(profile: str) -> str:
    """``(3, 6) 1.13.3 0.19.1`` from the profile's pins; the newest profile pins only Python."""
    if profile == "newest":
        return "(3, 13)"
    pins = dict(line.split("==", 1) for line in subprocess.run(
        [str(REPO / "tools" / "compat-venv"), "--spec", profile], stdout=subprocess.PIPE,
        universal_newlines=True, check=True).stdout.split())
    major, minor = pins["python"].split(".")
    return "(%s, %s) %s %s" % (major, minor, pins["numpy"], pins["scikit-learn"])


@pytest.mark.parametrize("profile", UBUNTU + ["newest"])
def test_trainer_and_history_tests_pass_on_runtime(profile):
    python = _compat_python(profile)
    versions = subprocess.run(
        [python, "-c", "import sys, numpy, sklearn; "
                       "print(tuple(sys.version_info[:2]), numpy.__version__, sklearn.__version__)"],
        stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.strip()
    assert versions.startswith(_expected_versions(profile)), versions
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not oracle and not long",
         "-k", DESELECT] + PURE_TESTS,
        cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), timeout=1500)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, "%s (%s):\n%s" % (profile, versions, tail)
    assert " passed" in tail and " failed" not in tail, tail


def _train_reference_grid(profile: str, out: str) -> dict:
    """``abrunnerctl train`` on ab-real-1 with AB's grid and seed 42: {configuration: its scores}."""
    python = _compat_python(profile)
    proc = subprocess.run([python, "-m", "abrunnerd.ctl", "train", str(AB_REAL_1), "--out", out, "--seed", "42",
                           "--jobs", "2"], cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), timeout=900)
    assert proc.returncode == 0, "%s: %s" % (profile, proc.stdout[-2000:])
    with open(os.path.join(out, "result.json")) as f:
        result = json.load(f)
    with open(os.path.join(out, "predictions.json")) as f:
        predictions = json.load(f)
    table = {(c["preprocessing"], c["kernel"], c["C"], c["gamma"]):
             (c["status"], c["accuracy"], c["fold_correct"], c["fold_total"]) for c in result["combinations"]}
    return {"table": table, "result": result, "classes": {m: p["value"] for m, p in predictions.items()}}


def test_reference_grid_scores_the_same_on_the_oldest_and_newest_runtime():
    if not (AB_REAL_1 / "gaia-reference" / "all_results.json").exists():
        pytest.skip("Gaia reference data missing: %s (CI provides ../shared beside the clone)" % AB_REAL_1)
    gaia = json.loads((AB_REAL_1 / "gaia-reference" / "all_results.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        oldest = _train_reference_grid(UBUNTU[0], os.path.join(tmp, UBUNTU[0]))
        newest = _train_reference_grid("newest", os.path.join(tmp, "newest"))
    assert len(oldest["table"]) == len(newest["table"]) == len(gaia) == 720
    differ = sorted(k for k in oldest["table"] if oldest["table"][k] != newest["table"].get(k))
    assert not differ, "%d configurations differ, e.g. %s: %s vs %s" % (
        len(differ), differ[0], oldest["table"][differ[0]], newest["table"].get(differ[0]))
    for ref in gaia:  # and both are Gaia's, as on the main runtime (tests/trainer/test_trainer_fidelity.py)
        ours = oldest["table"][(ref["preprocessing"], ref["kernel"], ref["C"], ref["gamma"])]
        assert ours[0] == "ok" and abs(ours[1] - ref["accuracy"]) <= 2.0, (ref, ours)
    for key in ("accuracy", "confusion_matrix", "parameters"):
        assert oldest["result"][key] == newest["result"][key], key
    assert oldest["result"]["accuracy"] == 96.11
    # The final model (probability calibration included) predicts the same class for every recording.
    assert oldest["classes"] == newest["classes"] and len(oldest["classes"]) == 180
