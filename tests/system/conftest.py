"""System tests: the .debs installed with apt into a booted Debian 11/12/13 (real systemd as
PID 1, journald, system D-Bus) by tools/debian-systemd-sandbox, driven from here.

The .debs are built by the fixture itself (tools/build-debs, once per session, in a
private copy of the tree), so `make test` needs no extra step. Set ABRUNNERD_DEB_DIR to
a directory holding prebuilt abrunnerd_*.debs (both versions) to skip the build.

Where the sandbox cannot run (not root, no systemd-nspawn/mmdebstrap) the tests skip
with the reason; with ABRUNNERD_SYSTEM_TESTS=required (CI) they fail instead.
"""
import glob
import re
import os
import shutil
import subprocess
import time
from typing import Dict, List, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANDBOX = os.path.join(ROOT, "tools", "debian-systemd-sandbox")
BUILD_DEBS = os.path.join(ROOT, "tools", "build-debs")
SUITES = ["bullseye", "bookworm", "trixie"]
UPGRADE_SUFFIX = "+systemtest1"  # the "newer build" installed mid-job


def _version() -> str:
    with open(os.path.join(ROOT, "abrunnerd", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split('"')[1]
    raise RuntimeError("no __version__ in abrunnerd/__init__.py")


def sandbox_unavailable() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, mounts, cgroups)"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "unshare", "setpriv"):
        if not shutil.which(tool):
            return "%s missing (apt-get install systemd-container mmdebstrap)" % tool
    return None


def build_unavailable() -> Optional[str]:
    for tool in ("dpkg-buildpackage", "dh", "dh_python3", "debconf-updatepo"):
        if not shutil.which(tool):
            return "%s missing (apt-get install dpkg-dev debhelper dh-python po-debconf)" % tool
    return None


def require(why: Optional[str]) -> None:
    """Skip with the reason, or fail when CI requires the system tests."""
    if why is None:
        return
    if os.environ.get("ABRUNNERD_SYSTEM_TESTS") == "required":
        pytest.fail("system tests are required (ABRUNNERD_SYSTEM_TESTS=required) but cannot run: " + why)
    pytest.skip("system-test sandbox unavailable: " + why)


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """{"first", "upgrade", "server", "upgrade_version", "dir", "changes"}: built once per session."""
    version = _version()
    upgrade_version = version + UPGRADE_SUFFIX
    prebuilt = os.environ.get("ABRUNNERD_DEB_DIR")
    if prebuilt:
        out = prebuilt
    else:
        require(build_unavailable())
        out = str(tmp_path_factory.mktemp("debs"))
        for extra in ([], ["--version", upgrade_version]):
            t0 = time.monotonic()
            r = subprocess.run([BUILD_DEBS] + extra + [out], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, timeout=900)
            assert r.returncode == 0, "tools/build-debs failed:\n" + r.stdout
            print("built the .debs %s in %.1f s" % (" ".join(extra), time.monotonic() - t0))
    paths = {
        "first": os.path.join(out, "abrunnerd_%s_all.deb" % version),
        "upgrade": os.path.join(out, "abrunnerd_%s_all.deb" % upgrade_version),
        "server": os.path.join(out, "abserver_%s_all.deb" % version),
    }
    for p in paths.values():
        assert os.path.exists(p), "missing %s (in %s: %s)" % (p, out, os.listdir(out))
    paths["upgrade_version"] = upgrade_version
    paths["dir"] = out
    paths["changes"] = sorted(glob.glob(os.path.join(out, "abrunnerd_%s_*.changes" % version)))[0]
    return paths


class Sandbox:
    """Runs a script inside a freshly booted container of one suite."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir

    def run(self, suite: str, script: str, src: Optional[str] = None, out: Optional[str] = None,
            debs: List[str] = (), timeout: int = 900) -> subprocess.CompletedProcess:  # type: ignore
        cmd = [SANDBOX, "-s", suite, "-t", str(timeout)]
        for deb in debs:
            cmd += ["-d", deb]
        if src:
            cmd += ["--src", src]
        if out:
            cmd += ["-o", out]
        t0 = time.monotonic()
        r = subprocess.run(cmd + [script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout + 120)
        r.seconds = time.monotonic() - t0  # type: ignore[attr-defined]
        return r


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    require(sandbox_unavailable())
    return Sandbox(str(tmp_path))


def known_breakage(suite: str) -> Optional[str]:
    """A precise reason when the code under test has a known defect on this suite (the
    test is then xfail, strict: it turns into a failure once the defect is fixed
    without this check being updated)."""
    if suite == "bullseye":
        path = os.path.join(ROOT, "abrunnerd", "reporting", "dbus_service.py")
        with open(path) as f:
            src = f.read()
        # dbus-python 1.2.16 (Debian 11) builds signals with inspect.getargspec, which
        # raises ValueError on any annotated function: the daemon dies at start.
        if re.search(r"@dbus\.service\.signal\([^\n]*\)\s*\n\s*def \w+\([^)]*:[^)]*\)|"
                     r"@dbus\.service\.signal\([^\n]*\)\s*\n\s*def \w+\([^)]*\)\s*->", src):
            return ("abrunnerd/reporting/dbus_service.py annotates a @dbus.service.signal method; "
                    "dbus-python 1.2.16 on Debian 11 raises 'Function has keyword-only parameters "
                    "or annotations' (inspect.getargspec) and the daemon exits at start")
    return None


@pytest.fixture
def xfail_known(request):
    """Call with the suite: marks the test xfail (strict) when known_breakage() says so."""
    def mark(suite: str) -> None:
        why = known_breakage(suite)
        if why:
            request.node.add_marker(pytest.mark.xfail(reason=why, strict=True))
    return mark
