"""abserver installed from its package in a booted Debian (12 by default; 13 in the long
form): the service starts, a runner in the same container trains a job through it, and
purge removes it (scenarios/server.py)."""
import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from helpers.server import EXAMPLE_DATASET

SCENARIO = str(Path(__file__).parent / "scenarios" / "server.py")
GRID = ["--preprocessing", "basic", "normalized", "--c-values", "-1", "1", "3", "--gamma-values", "-3", "-1"]


def _free_port() -> int:
    with socket.socket() as s:  # the container shares the host's loopback
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(suite, sandbox, debs, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    shutil.copy(debs["first"], src)
    shutil.copy(debs["server"], src)
    shutil.copytree(str(EXAMPLE_DATASET), str(src / "dataset"))
    (src / "params.json").write_text(json.dumps({
        "debs": {"runner": os.path.basename(debs["first"]), "server": os.path.basename(debs["server"])},
        "port": _free_port(), "grid": GRID}))
    r = sandbox.run(suite, SCENARIO, src=str(src), out=str(out), timeout=900)
    report = out / "report.json"
    print("[%s] %.1f s; %s" % (suite, r.seconds, report.read_text()[:2000] if report.exists() else "no report"))
    assert r.returncode == 0, "server scenario failed on %s (exit %d):\n%s\n%s" % (
        suite, r.returncode, r.stdout[-8000:], r.stderr[-3000:])


@pytest.mark.system
def test_abserver_package_serves_a_runner(sandbox, debs, tmp_path):
    _run("bookworm", sandbox, debs, tmp_path)


@pytest.mark.system
@pytest.mark.long
def test_abserver_package_serves_a_runner_trixie(sandbox, debs, tmp_path):
    _run("trixie", sandbox, debs, tmp_path)
