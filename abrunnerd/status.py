"""The runner's current status, shared between the main loop and the D-Bus thread,
plus the control requests (pause, resume, cancel) going the other way.

The main loop owns the status and is the only writer; other threads read snapshots
and post requests, which the loop acts on at its next safe point.
"""
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List

IDLE, NO_TOKEN, POLLING, CLAIMED, DOWNLOADING, TRAINING, PAUSED, UPLOADING, BACKOFF, STOPPING = (
    "idle", "no-token", "polling", "claimed", "downloading", "training", "paused", "uploading",
    "backoff", "stopping")


class RunnerStatus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: Dict[str, Any] = {"state": IDLE, "job_id": "", "dataset_id": "", "stage": "",
                                      "fraction": 0.0, "eta_seconds": -1, "cells_done": 0,
                                      "cells_total": 0, "message": "", "last_error": "",
                                      "server_url": "", "runner_name": ""}
        self._requests: List[str] = []
        self.listeners: List[Callable[[Dict[str, Any]], None]] = []

    def update(self, **changes: Any) -> None:
        with self._lock:
            changed = any(self._data.get(k) != v for k, v in changes.items())
            self._data.update(changes)
            snap = dict(self._data)
        if changed:
            for listener in self.listeners:
                listener(snap)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            snap = dict(self._data)
        snap["pid"] = os.getpid()
        snap["updated"] = int(time.time())
        # Proof for the idle-footprint benchmark: the main process keeps numpy/sklearn out.
        snap["main_imports_numpy"] = "numpy" in sys.modules
        snap["main_imports_sklearn"] = "sklearn" in sys.modules
        snap["rss_bytes"] = _rss_bytes()
        return snap

    def request(self, what: str) -> None:
        """Queue a control request ("pause", "resume", "cancel")."""
        with self._lock:
            self._requests.append(what)

    def take_requests(self) -> List[str]:
        with self._lock:
            out, self._requests = self._requests, []
        return out


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def summary(snap: Dict[str, Any]) -> str:
    """The one-line human status for sd_notify STATUS= and `abrunnerctl status`."""
    state = snap.get("state", "")
    job = (snap.get("job_id") or "")[:8]
    if state in (TRAINING, PAUSED) and job:
        text = "%s job %s…: %.0f%%" % ("training" if state == TRAINING else "paused",
                                       job, 100 * float(snap.get("fraction") or 0))
        if snap.get("cells_total"):
            text += " (%d/%d cells)" % (snap.get("cells_done", 0), snap["cells_total"])
        eta = snap.get("eta_seconds")
        if state == TRAINING and isinstance(eta, (int, float)) and eta >= 0:
            text += ", ETA " + format_duration(eta)
        return text
    if job and state in (CLAIMED, DOWNLOADING, UPLOADING):
        return "%s job %s…" % (state, job)
    if state == BACKOFF:
        return "waiting to retry: " + (snap.get("message") or snap.get("last_error") or "")
    return snap.get("message") or state


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return "%d s" % seconds
    if seconds < 5400:
        return "%d min" % round(seconds / 60)
    return "%.1f h" % (seconds / 3600)
