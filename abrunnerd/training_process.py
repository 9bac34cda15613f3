"""The training subprocess, seen from the daemon: start, watch, pause, stop.

Training runs in ``python3 -m abrunnerd.train_worker JOB_DIR``, in its own session and
process group (so pause/stop reach the trainer's pool too), niced with an idle I/O
class and tied to the daemon with PR_SET_PDEATHSIG (all set by the worker itself at
start: no preexec_fn, which is unsafe once the D-Bus thread runs). The daemon's main
loop stays at normal priority and never imports numpy/scikit-learn, so heartbeats
keep flowing while training saturates every core. Progress comes back through an
atomically replaced ``progress.json``; results through files in the job directory.
"""
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Dict, Optional

import abrunnerd
from abrunnerd import atomic

# Worker exit codes
DONE, CRASHED, DATASET_ERROR, STOPPED = 0, 1, 2, 3


def _env(extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(abrunnerd.__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("NOTIFY_SOCKET", None)  # only the daemon talks to systemd
    env.update(extra)
    return env


class TrainingProcess:
    def __init__(self, job_dir: str, nice: int, log_path: str) -> None:
        self.job_dir = job_dir
        self.nice = nice
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self.paused = False

    def start(self) -> int:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "abrunnerd.train_worker", self.job_dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
                start_new_session=True, cwd=self.job_dir,
                env=_env({"ABRUNNERD_NICE": str(self.nice), "ABRUNNERD_PARENT_PID": str(os.getpid())}))
        return self.proc.pid

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> Optional[int]:
        return self.proc.poll() if self.proc else None

    def progress(self) -> Optional[Dict[str, Any]]:
        try:
            return atomic.read_json(os.path.join(self.job_dir, "progress.json"))
        except (OSError, ValueError):
            return None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)
        self.paused = False

    def stop(self, grace: float = 3.0) -> Optional[int]:
        """Ask the worker to stop after its current cell, then kill the group.

        The checkpoint holds every finished cell, so a kill loses at most one cell.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.resume()
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        self._signal_group(signal.SIGKILL)  # the pool's processes too
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return None


def kill_stale(pgid: Optional[int]) -> None:
    """After a daemon crash, make sure no worker of the previous run still trains."""
    if not pgid:
        return
    try:
        with open("/proc/%d/cmdline" % pgid, "rb") as f:
            cmdline = f.read()
        # the interpreter's command line, or the title proctitle.py gave it
        if b"abrunnerd.train_worker" not in cmdline and not cmdline.startswith(b"abrunnerd: training job"):
            return
        os.killpg(pgid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


def estimate_peak_memory(n_recordings: int, options: Dict[str, Any], workers: int,
                         timeout: float = 120.0, should_stop: Any = None, max_memory: Optional[int] = None) -> int:
    """The trainer's estimate, computed in a short-lived process (the daemon itself
    must not import numpy/scikit-learn); with ``max_memory`` the kernel budget the
    training process will use follows from it. Raises RuntimeError when it cannot; the
    wait gives up within a fraction of a second when ``should_stop()`` says so."""
    query = json.dumps({"n_recordings": n_recordings, "options": options, "workers": workers,
                        "max_memory": max_memory})
    proc = subprocess.Popen([sys.executable, "-m", "abrunnerd.train_worker", "--estimate"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env({}))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                out, err = proc.communicate(query.encode() if query else None, timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                query = ""
                if time.monotonic() > deadline or (should_stop is not None and should_stop()):
                    raise RuntimeError("memory estimate gave up (%s)" % (
                        "stopping" if time.monotonic() <= deadline else "took more than %.0f s" % timeout))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError("memory estimate failed: " + err.decode(errors="replace")[-300:])
    try:
        return int(out.decode().strip())
    except ValueError:
        raise RuntimeError("memory estimate failed: no number in its answer") from None
