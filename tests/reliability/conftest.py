"""Fixtures of the reliability suite: fault harnesses that skip cleanly where the
machine cannot provide them (and fail instead under CI, where it must)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_harness import hostile, netns, smallfs  # noqa: E402
from rel_harness.record import out_dir  # noqa: E402

LONG = bool(os.environ.get("ABRUNNERD_LONG"))


def need(reason):
    """Skip for a missing facility, except in CI, where the suite must run whole."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail("reliability suite cannot run here: %s" % reason)
    pytest.skip(reason)


@pytest.fixture
def netpair():
    """Two fresh network namespaces joined by veth; see rel_harness.netns."""
    need(netns.available())
    netns.cleanup_stale()
    with netns.NetPair() as pair:
        yield pair


@pytest.fixture
def small_fs_factory():
    need(smallfs.available())
    made = []

    def make(size_bytes):
        fs = smallfs.SmallFs(size_bytes).__enter__()
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.close()


@pytest.fixture(scope="session")
def baselines():
    """Undisturbed results by job grid, shared by the modules that compare against one
    (same example dataset, same seed: the result does not depend on the server)."""
    return {}


@pytest.fixture(scope="session", autouse=True)
def _reliability_out():
    """Print where the results go, so tools/reliability-report can be pointed at them."""
    path = out_dir()
    yield path
    sys.stderr.write("\nreliability results: %s\n" % path)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """A lying job server process on loopback (rel_harness/hostile_server.py)."""
    server = hostile.HostileServer(tmp_path_factory.mktemp("hostile-server")).start()
    yield server
    server.stop()
