"""The built packages themselves: lintian-clean, Depends floors = the oldest tested
versions, and the stdeb path still works.

lintian runs on the host (no sandbox needed); the stdeb package is installed with apt
into a booted Debian 12 container, where ``abrunnerctl --help`` must run.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from syshelpers import BUILD_DEBS, require  # noqa: E402

SCENARIO = str(Path(__file__).parent / "scenarios" / "stdeb_smoke.sh")


def test_lintian_clean(debs):
    """No errors, no warnings (pedantic tags shown for information only)."""
    require(None if shutil.which("lintian") else "lintian missing (apt-get install lintian)")
    r = subprocess.run(["lintian", "--pedantic", "--display-info", debs["changes"]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=600)
    tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
    print(r.stdout)
    assert not tags, "lintian errors/warnings:\n" + "\n".join(tags)


# Debian package -> the PyPI name tools/compat-venv pins; the oldest Ubuntu profile's pins
# are the oldest versions the matrix tests, so they are the .deb's lower bounds.
FLOOR_PACKAGES = {"python3-numpy": "numpy", "python3-scipy": "scipy", "python3-sklearn": "scikit-learn",
                  "python3-requests": "requests", "python3-yaml": "PyYAML", "python3-daemon": "python-daemon"}


def test_depends_floors_are_the_oldest_tested_versions(debs):
    depends = subprocess.run(["dpkg-deb", "-f", debs["first"], "Depends"], stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout
    bounds = {name.replace(":any", ""): v for name, v in re.findall(r"(python3[\w.:-]*) \(>= ([^)]+)\)", depends)}
    oldest = subprocess.run([BUILD_DEBS.replace("build-debs", "compat-venv"), "--list"], stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout.split()[0]
    pins = dict(line.split("==", 1) for line in subprocess.run(
        [BUILD_DEBS.replace("build-debs", "compat-venv"), "--spec", oldest], stdout=subprocess.PIPE,
        universal_newlines=True, check=True).stdout.split())
    print("Depends: %s\n%s pins: %s" % (depends.strip(), oldest, pins))
    for package, pypi in sorted(FLOOR_PACKAGES.items()):
        want = pins[pypi].replace(".post1", "")
        got = bounds.get(package, "")
        assert got.split(":")[-1] == want, "%s: Depends has (>= %s), the oldest tested is %s (%s)" % (
            package, got or "no bound", want, oldest)
    assert bounds.get("python3", "").rstrip("~") == pins["python"], "python3: %s" % depends


@pytest.mark.system
def test_stdeb_package_installs_and_runs(sandbox, tmp_path):
    require(None if os.path.exists("/usr/lib/python3/dist-packages/stdeb")
            else "python3-stdeb missing (apt-get install python3-stdeb)")
    out = tmp_path / "stdeb"
    r = subprocess.run([BUILD_DEBS, "--stdeb", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=900)
    assert r.returncode == 0, r.stdout
    deb = r.stdout.strip().splitlines()[-1]
    res = sandbox.run("bookworm", SCENARIO, debs=[deb], timeout=600)
    assert res.returncode == 0 and "STDEB SMOKE PASSED" in res.stdout, res.stdout + res.stderr[-4000:]
