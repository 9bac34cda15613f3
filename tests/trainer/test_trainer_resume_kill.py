"""Kill -9 ``abrunnerctl train`` (and its worker processes) at random points; the resumed result is identical."""
import json
import os
import random
import signal
import subprocess
import sys
import time

from trainer_paths import AB_REAL_SMALL, REPO

GRID = ["--c-values", "-1", "1", "5", "9", "--gamma-values", "-3", "-7", "-11"]
TOTAL_CELLS = 5 * 2 * 4 * 3 * 5
RUN_TIMEOUT = 300


def _command(out, jobs):
    return [sys.executable, "-m", "abrunnerd.ctl", "train", str(AB_REAL_SMALL), "--out", str(out),
            "--jobs", str(jobs)] + GRID


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cells_logged(path):
    try:
        with open(path, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def _run_to_end(out, jobs):
    proc = subprocess.run(_command(out, jobs), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stderr.decode()


def _run_and_kill(out, jobs, after_cells):
    """Start a run, wait until the checkpoint holds ``after_cells`` cells, SIGKILL its process group."""
    proc = subprocess.Popen(_command(out, jobs), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=str(REPO), start_new_session=True)
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while proc.poll() is None and _cells_logged(out / "checkpoint.jsonl") < after_cells:
            assert time.monotonic() < deadline, "training did not reach %d cells" % after_cells
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    return proc.returncode


def _outputs(out):
    return {name: json.loads((out / name).read_text()) for name in ("result.json", "predictions.json")}


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    reference = tmp_path / "reference"
    _run_to_end(reference, 1)
    rng = random.Random(int(os.environ.get("ABRUNNERD_TEST_SEED", "20261125")))
    points = sorted(rng.sample(range(5, TOTAL_CELLS - 60), 4))
    out = tmp_path / "killed"
    killed = 0
    for i, point in enumerate(points):
        before = _cells_logged(out / "checkpoint.jsonl")
        code = _run_and_kill(out, 1 + i % 2, point)  # alternate in-process and two worker processes
        killed += code == -signal.SIGKILL
        after = _cells_logged(out / "checkpoint.jsonl")
        assert after >= before  # finished cells are never lost
    assert killed >= 2, "the runs finished before they could be killed"
    assert not (out / "checkpoint.jsonl.stale").exists()
    log = _run_to_end(out, 2)
    first = next(line for line in log.splitlines() if line.startswith("training:"))
    assert not first.startswith("training: 0/"), first  # it resumed
    assert _outputs(out) == _outputs(reference)
    assert (out / "ab-real-small.history").read_bytes() == (reference / "ab-real-small.history").read_bytes()
