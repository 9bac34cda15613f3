"""A command whose libraries are missing stays listed and says what is missing.

``python3 -S`` is a real Python without site-packages: no numpy, scikit-learn or PyYAML,
as on a machine where only part of the dependencies is installed.
"""
import subprocess
import sys

from runner.conftest import ROOT


def _ctl(*args):
    return subprocess.run([sys.executable, "-S", "-m", "abrunnerd.ctl"] + list(args), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def test_commands_stay_listed_without_their_libraries():
    done = _ctl("--help")
    assert done.returncode == 0, done.stderr
    for command in ("status", "train", "inspect-history"):
        assert "\n    %s " % command in done.stdout or "\n    %s\n" % command in done.stdout, done.stdout
    assert "train          (unavailable: No module named 'numpy')" in done.stdout, done.stdout


def test_running_one_names_the_missing_module_and_the_package():
    done = _ctl("train", "examples/ab-real-small", "--out", "/nonexistent")
    assert done.returncode == 69, (done.returncode, done.stderr)
    assert "invalid choice" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("abrunnerctl train: unavailable on this Python %d.%d: No module named 'numpy'"
                               % sys.version_info[:2]), lines
    assert "apt install python3-numpy" in lines[0]
    status = _ctl("status")
    assert status.returncode == 69 and "No module named 'yaml'" in status.stderr and "python3-yaml" in status.stderr
