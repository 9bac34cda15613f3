"""The runner's status model: every state, what each surface shows in it, and the
progress figures all of them share.

One snapshot (``RunnerStatus``, written only by the main loop) feeds every surface:
``summary()`` is the ``STATUS=`` line of ``systemctl status`` and the first line of
``abrunnerctl status``; D-Bus ``GetStatus``/``Progress`` carry the snapshot itself
(with that line as ``summary``); ``journal_progress()`` is the journal's progress line;
the status pings send the same stage, fraction, cells and ETA. ``STATES`` states each
state's meaning and its possible next states; docs/status.md shows the same table
(a test keeps the two in step).

Progress goes through ``ProgressTracker``: per job, never backwards (a restarted
training process starts from its checkpoint; until it reports, the position saved in
``state.json`` is shown, never 0/0 or the download's 100 %), with an ETA computed from
the time spent training only (pauses do not count) and smoothed across restarts
(the rate is saved with the position).
"""
import math
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional
from urllib.parse import urlsplit

IDLE, NO_TOKEN, POLLING, CLAIMED, RESUMING, DOWNLOADING, TRAINING, PAUSED, UPLOADING, BACKOFF, \
    STOPPING, STOPPED = ("idle", "no-token", "polling", "claimed", "resuming", "downloading",
                         "training", "paused", "uploading", "backoff", "stopping", "stopped")


class State(NamedTuple):
    meaning: str
    shows: str  # what STATUS= / `abrunnerctl status` says (summary())
    next: List[str]


# Every state and its transitions. `config refused` is not a state: a failed reload keeps
# the state and sets ``config_error``, which summary() puts first outside a job.
STATES = {
    IDLE: State("token present, no job held; polls every poll_interval",
                "idle: no pending jobs, next poll HH:MM:SS[; last: <result>]",
                [POLLING, NO_TOKEN, STOPPING]),
    NO_TOKEN: State("no token file; waits for `systemctl reload` (SIGHUP)",
                    "no token: put the token into <token_file> ... (and: server_url is still the "
                    "shipped example); after a refused reload: configuration refused on reload "
                    "(still without a token): <reason>", [IDLE, STOPPING]),
    POLLING: State("asking the server for pending jobs", "looking for pending jobs",
                   [CLAIMED, IDLE, BACKOFF, STOPPING]),
    CLAIMED: State("a new job claimed, nothing downloaded yet", "claimed job <id8>…",
                   [DOWNLOADING, TRAINING, BACKOFF, STOPPING]),
    RESUMING: State("a held job found at start (crash, restart, upgrade); lease re-claimed",
                    "resuming job <id8>… at N% (d/t cells)",
                    [DOWNLOADING, TRAINING, UPLOADING, IDLE, BACKOFF, STOPPING]),
    DOWNLOADING: State("fetching the features bundle (resumable)", "downloading job <id8>…: N% of the features",
                       [TRAINING, BACKOFF, STOPPING]),
    TRAINING: State("the training process runs; pings carry cells/fraction/ETA",
                    "training job <id8>…: N% (d/t cells), ETA 12 min",
                    [PAUSED, UPLOADING, IDLE, BACKOFF, STOPPING]),
    PAUSED: State("training processes stopped (SIGSTOP), lease kept by pings",
                  "paused job <id8>…: N% (d/t cells)", [TRAINING, IDLE, STOPPING]),
    UPLOADING: State("result and model being uploaded (retried until acknowledged)",
                     "uploading job <id8>…", [IDLE, BACKOFF, STOPPING]),
    BACKOFF: State("the server or the disk failed; waiting before the next try",
                   "waiting to retry: <error> (retry in N s)", [POLLING, RESUMING, IDLE, NO_TOKEN, STOPPING]),
    STOPPING: State("SIGTERM received; the training process is stopped, the job kept",
                    "stopping: job <id8>… keeps its checkpoint at N% (d/t cells)", [STOPPED]),
    STOPPED: State("the last STATUS= before exit", "stopped: job <id8>… kept at N% (d/t cells), "
                   "resumes on the next start | stopped (no job held)", []),
}
JOB_STATES = (CLAIMED, RESUMING, DOWNLOADING, TRAINING, PAUSED, UPLOADING, STOPPING, STOPPED)


def effective_ping_interval(configured: float, offered: Optional[float]) -> float:
    """The server's ``ping_interval`` is an upper bound: the config's value is used when it
    is lower (a job shorter than the server's interval still reports training)."""
    if offered is None or not isinstance(offered, (int, float)) or isinstance(offered, bool) \
            or not math.isfinite(offered) or offered <= 0:
        return float(configured)
    return float(min(configured, max(1.0, float(offered))))


def is_example_url(url: str) -> bool:
    """server_url still points at a reserved example domain (the shipped default)."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    return any(host == d or host.endswith("." + d) for d in ("example.org", "example.com", "example.net"))


class ProgressTracker:
    """One job's training progress as every surface shows it.

    ``done`` never decreases; ``total`` is the grid size once known. The ETA is
    seconds per cell over training time only, as an exponentially weighted ratio of
    sums: the training seconds and the cells finished are both summed with weights
    that halve every ``half_life`` seconds of training, so a burst of fast cells (a fold's
    kernel matrix done, its cells then finishing in milliseconds) or a slow stretch moves
    the estimate by its share of the time, not by its count of samples. Time counts from
    the training process's first report with the grid size (after its load time, which
    is not a cell's) and after a resume; paused time is not counted; the sums are saved
    with the position, so the ETA continues smoothly after a restart.
    """

    MIN_SECONDS = 5.0  # no ETA of our own before this much training time was measured

    def __init__(self, cells_done: int = 0, cells_total: int = 0,
                 seconds_per_cell: Optional[float] = None, weight_seconds: float = 60.0,
                 half_life: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.done = max(0, int(cells_done or 0))
        self.total = max(0, int(cells_total or 0))
        self.half_life = half_life
        self.clock = clock
        self.paused = False
        if seconds_per_cell and seconds_per_cell > 0:
            self._seconds = float(weight_seconds)
            self._cells = self._seconds / seconds_per_cell
        else:
            self._seconds, self._cells = 0.0, 0.0
        self._active = 0.0  # training seconds (not paused) observed so far
        self._last: Optional[float] = None
        self._mark: Optional[tuple] = None  # (active seconds, cells done) at the last increase

    @property
    def spc(self) -> Optional[float]:
        """Seconds per cell, once enough training time was measured."""
        if self._cells <= 0 or self._seconds < self.MIN_SECONDS:
            return None
        return self._seconds / self._cells

    def _advance_clock(self) -> None:
        now = self.clock()
        if self._last is not None and not self.paused:
            self._active += max(0.0, now - self._last)
        self._last = now

    def restart(self) -> None:
        """A new training process: its first cell only sets the mark."""
        self._advance_clock()
        self._mark = None

    def pause(self) -> None:
        self._advance_clock()
        self.paused = True

    def resume(self) -> None:
        self._advance_clock()
        self.paused = False
        self._mark = None

    def observe(self, cells_done: int, cells_total: int) -> None:
        """The training process's own figures; the rate is measured on them, what is shown
        never goes below what was shown before."""
        self._advance_clock()
        cells_done, cells_total = max(0, int(cells_done or 0)), max(0, int(cells_total or 0))
        if not cells_total:
            return  # still loading: no grid yet
        if self.total and cells_total != self.total:  # another grid: start over
            self.done, self._seconds, self._cells, self._mark = 0, 0.0, 0.0, None
        self.total = cells_total
        if self._mark is None or cells_done < self._mark[1]:
            # the process's first report (its checkpoint position): training starts now
            self._mark = (self._active, cells_done)
        elif cells_done > self._mark[1]:
            span = self._active - self._mark[0]
            keep = 0.5 ** (span / self.half_life)
            self._seconds = self._seconds * keep + span
            self._cells = self._cells * keep + (cells_done - self._mark[1])
            self._mark = (self._active, cells_done)
        self.done = max(self.done, cells_done)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / float(self.total)) if self.total else 0.0

    def eta_seconds(self) -> int:
        spc = self.spc
        if spc is None or not self.total:
            return -1
        return int(round(spc * max(0, self.total - self.done)))

    def fields(self) -> Dict[str, Any]:
        """The snapshot fields (and ping body figures) for this job."""
        return {"cells_done": self.done, "cells_total": self.total, "fraction": self.fraction,
                "eta_seconds": self.eta_seconds()}

    def saved(self) -> Dict[str, Any]:
        """What the job directory keeps, so a restart shows the same position and ETA."""
        return {"cells_done": self.done, "cells_total": self.total,
                "seconds_per_cell": self._seconds / self._cells if self._cells > 0 else None,
                "weight_seconds": self._seconds}

    @classmethod
    def from_saved(cls, saved: Any, **kw: Any) -> "ProgressTracker":
        saved = saved if isinstance(saved, dict) else {}

        def number(key: str) -> Any:
            v = saved.get(key)
            return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                and 0 <= v < 1e12 else None

        return cls(int(number("cells_done") or 0), int(number("cells_total") or 0),
                   number("seconds_per_cell"), weight_seconds=number("weight_seconds") or 0.0, **kw)


class RunnerStatus:
    """The shared snapshot: the main loop writes, the D-Bus thread reads; control requests
    (pause, resume, cancel) go the other way and are acted on at the loop's next safe point."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: Dict[str, Any] = {"state": IDLE, "job_id": "", "dataset_id": "", "stage": "",
                                      "fraction": 0.0, "eta_seconds": -1, "cells_done": 0,
                                      "cells_total": 0, "message": "", "last_error": "",
                                      "server_url": "", "runner_name": "", "next_poll": 0,
                                      "last_result": "", "config_error": ""}
        self._requests: List[str] = []
        self.listeners: List[Callable[[Dict[str, Any]], None]] = []

    def update(self, **changes: Any) -> None:
        with self._lock:
            changed = any(self._data.get(k) != v for k, v in changes.items())
            self._data.update(changes)
            snap = dict(self._data)
        if changed:
            snap["summary"] = summary(snap)
            for listener in self.listeners:
                listener(snap)

    def snapshot(self) -> Dict[str, Any]:
        with self._lock:
            snap = dict(self._data)
        snap["summary"] = summary(snap)
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


def position(snap: Dict[str, Any]) -> str:
    """Like "43% (620/1440 cells)"; empty before the grid size is known."""
    total = int(snap.get("cells_total") or 0)
    if not total:
        return ""
    return "%.0f%% (%d/%d cells)" % (100 * float(snap.get("fraction") or 0), int(snap.get("cells_done") or 0),
                                     total)


def summary(snap: Dict[str, Any]) -> str:
    """The one-line human status: sd_notify STATUS=, `abrunnerctl status`, D-Bus ``summary``."""
    state = snap.get("state", "")
    job = (snap.get("job_id") or "")[:8]
    where = position(snap)
    eta = snap.get("eta_seconds")
    if state in (TRAINING, PAUSED) and job:
        text = "%s job %s…: %s" % (state, job, where or "preparing")
        if state == TRAINING and where and isinstance(eta, (int, float)) and eta >= 0 \
                and int(snap.get("cells_done") or 0) < int(snap.get("cells_total") or 0):
            text += ", ETA " + format_duration(eta)
        elif state == TRAINING and where and snap.get("cells_done") == snap.get("cells_total"):
            text += ", final model"
        return text
    if state == RESUMING and job:
        return "resuming job %s…%s" % (job, " at " + where if where else "")
    if state == DOWNLOADING and job:
        return "downloading job %s…: %.0f%% of the features" % (job, 100 * float(snap.get("fraction") or 0))
    if state in (CLAIMED, UPLOADING) and job:
        return "%s job %s…" % (state, job)
    if state == STOPPING:
        if job:
            return "stopping: job %s… keeps its checkpoint%s" % (job, " at " + where if where else "")
        return "stopping"
    if state == STOPPED:
        if job:
            return "stopped: job %s… kept%s, resumes on the next start" % (job, " at " + where if where else "")
        return "stopped (no job held)"
    refused = snap.get("config_error") or ""
    if refused:
        still = {NO_TOKEN: "still without a token", IDLE: "running on the previous one"}.get(state, "")
        # the short part first: STATUS= is bounded (sinks.notify_status) and a reason can be long
        return "configuration refused on reload%s: %s" % (" (%s)" % still if still else "", refused)
    if state == BACKOFF:
        return "waiting to retry: " + (snap.get("message") or snap.get("last_error") or "")
    if state == IDLE:
        text = snap.get("message") or "idle"
        nxt = snap.get("next_poll")
        if isinstance(nxt, (int, float)) and nxt > 0:
            text += ", next poll %s" % time.strftime("%H:%M:%S", time.localtime(nxt))
        if snap.get("last_result"):
            text += "; last: " + snap["last_result"]
        return text
    return snap.get("message") or state


def journal_progress(snap: Dict[str, Any]) -> str:
    """The journal's progress line, "43% ETA 12 min (620/1440) 1f3c2a4b": % and ETA first,
    then cells done/total and the short job id, so that it fits `systemctl status`'s 80
    columns after the ~40-column prefix. The whole id is in the line's JOB_ID field."""
    text = "%.0f%%" % (100 * float(snap.get("fraction") or 0))
    eta = snap.get("eta_seconds")
    if isinstance(eta, (int, float)) and eta >= 0 and snap.get("cells_done") != snap.get("cells_total"):
        text += " ETA " + format_duration(eta)
    return "%s (%d/%d) %s" % (text, int(snap.get("cells_done") or 0), int(snap.get("cells_total") or 0),
                              (snap.get("job_id") or "")[:8])


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return "%d s" % seconds
    if seconds < 5400:
        return "%d min" % round(seconds / 60)
    return "%.1f h" % (seconds / 3600)
