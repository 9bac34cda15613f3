"""Helpers of the system tests (see conftest.py): sandbox availability and the sandbox runner."""
import os
import shutil
import subprocess
import time
from typing import List, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANDBOX = os.path.join(ROOT, "tools", "debian-systemd-sandbox")
BUILD_DEBS = os.path.join(ROOT, "tools", "build-debs")
SUITES = ["bullseye", "bookworm", "trixie"]
UPGRADE_SUFFIX = "+systemtest1"  # the "newer build" installed mid-job


def version() -> str:
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
