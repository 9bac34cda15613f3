"""System tests: the .debs installed with apt into a booted Debian 11/12/13 (real systemd as
PID 1, journald, system D-Bus) by tools/debian-systemd-sandbox, driven from here.

The .debs are built by the fixture itself (tools/build-debs, once per session, in a
private copy of the tree), so `make test` needs no extra step. Set ABRUNNERD_DEB_DIR to
a directory holding prebuilt abrunnerd_*.debs (both versions) to skip the build.

Where the sandbox cannot run (not root, no systemd-nspawn/mmdebstrap) the tests skip
with the reason; with ABRUNNERD_SYSTEM_TESTS=required (CI) they fail instead.
"""
import glob
import os
import subprocess
import time
from typing import Dict

import pytest

from syshelpers import BUILD_DEBS, SANDBOX, UPGRADE_SUFFIX, Sandbox, build_unavailable, require, \
    sandbox_unavailable, version


@pytest.fixture(scope="session", autouse=True)
def prebuilt_rootfs(request, tmp_path_factory: pytest.TempPathFactory):
    """Build (or refresh) the cached rootfs of each suite in the background, one at a time,
    while the .debs build: on a fresh machine this overlaps the two slowest steps. A test
    that needs a suite first simply waits on the tool's per-suite lock."""
    if sandbox_unavailable() or not any("system" in item.keywords for item in request.session.items):
        yield None
        return
    log = tmp_path_factory.mktemp("rootfs") / "build.log"
    script = " ; ".join("%s -s %s --build-only" % (SANDBOX, s) for s in ("bookworm", "bullseye", "trixie"))
    with open(log, "w") as f:
        proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    yield proc
    try:
        proc.wait(timeout=900)  # normally long done; never leave it running
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """{"first", "upgrade", "server", "upgrade_version", "dir", "changes"}: built once per session."""
    ver = version()
    upgrade_version = ver + UPGRADE_SUFFIX
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
        "first": os.path.join(out, "abrunnerd_%s_all.deb" % ver),
        "upgrade": os.path.join(out, "abrunnerd_%s_all.deb" % upgrade_version),
        "server": os.path.join(out, "abserver_%s_all.deb" % ver),
    }
    for p in paths.values():
        assert os.path.exists(p), "missing %s (in %s: %s)" % (p, out, os.listdir(out))
    paths["upgrade_version"] = upgrade_version
    paths["dir"] = out
    paths["changes"] = sorted(glob.glob(os.path.join(out, "abrunnerd_%s_*.changes" % ver)))[0]
    return paths


@pytest.fixture
def sandbox(tmp_path) -> Sandbox:
    require(sandbox_unavailable())
    return Sandbox(str(tmp_path))
