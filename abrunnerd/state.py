"""Durable runner state under ``work_dir``: who this runner is and the job it holds.

Layout (all writes atomic, see ``atomic``)::

    work_dir/runner_id                 this runner's UUID, kept for life
    work_dir/jobs/<job_id>/state.json  the held job: lease, stage, server facts
    work_dir/jobs/<job_id>/job.json    job details as the server gave them
    work_dir/jobs/<job_id>/features.bin(.part)   the features bundle (resumable)
    work_dir/jobs/<job_id>/abdata/     AB-form dataset dir (servers with only AB's API)
    work_dir/jobs/<job_id>/checkpoint  the trainer's checkpoint (finished grid cells)
    work_dir/jobs/<job_id>/result.json, model.history   written by the training process
    work_dir/results/<job_id>/         results kept locally (server without upload endpoint)

    work_dir/quarantine/<job_id>-<time>/  a job whose state file could not be used

A job directory with a ``state.json`` is a job this runner holds; after a crash it is
resumed from there. Deleting the directory is the last step of a job.

Trust: every name under ``work_dir`` is derived from a canonical UUID (``ids``), and
every path the runner writes or deletes goes through ``inside_work_dir`` first, so a
hostile id can at worst be refused, never name a path outside ``work_dir``. The state
file itself is input too: one that cannot be used is moved to ``quarantine/`` with
the reason logged, and costs that job only.
"""
import logging
import os
import shutil
import stat
import string
import time
import uuid
from typing import Any, Dict, List, Optional

from abrunnerd import atomic
from abrunnerd.ids import canonical_uuid, is_canonical_uuid

log = logging.getLogger("abrunnerd")


class PathEscape(OSError):
    """A path the runner was about to write or delete lies outside work_dir (a bug or an attack)."""


def inside_work_dir(work_dir: str, path: str) -> str:
    """``path`` itself when it resolves inside ``work_dir`` (symlinks followed), else PathEscape.

    The final guard of every write and delete: ids are checked long before this, so it
    firing means a bug, and the write must not happen."""
    root = os.path.realpath(work_dir)
    real = os.path.realpath(path)
    if real == root or not real.startswith(root + os.sep):
        raise PathEscape("refusing to touch %r: it is outside work_dir %s" % (path, work_dir))
    return path


class JobFiles:
    """Paths of one job's directory (named by the job's canonical UUID, nothing else)."""

    def __init__(self, work_dir: str, job_id: str) -> None:
        job_id = canonical_uuid(job_id, "job id")
        self.job_id = job_id
        self.dir = os.path.join(work_dir, "jobs", job_id)
        self.state = os.path.join(self.dir, "state.json")
        self.details = os.path.join(self.dir, "job.json")
        self.spec = os.path.join(self.dir, "spec.json")
        self.features = os.path.join(self.dir, "features.bin")
        self.features_part = self.features + ".part"
        self.abdata = os.path.join(self.dir, "abdata")
        self.checkpoint = os.path.join(self.dir, "checkpoint")
        self.progress = os.path.join(self.dir, "progress.json")
        self.result = os.path.join(self.dir, "result.json")
        self.model = os.path.join(self.dir, "model.history")
        self.error = os.path.join(self.dir, "error.json")
        self.worker_log = os.path.join(self.dir, "worker.log")


class StateStore:
    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir

    def ensure_dirs(self) -> None:
        for sub in ("jobs", "results"):
            os.makedirs(os.path.join(self.work_dir, sub), mode=0o750, exist_ok=True)

    def runner_id(self) -> str:
        """This runner's UUID, created on first use and kept across restarts."""
        path = os.path.join(self.work_dir, "runner_id")
        try:
            with open(path, encoding="ascii") as f:
                return str(uuid.UUID(f.read().strip()))
        except (OSError, ValueError):
            value = str(uuid.uuid4())
            atomic.write_bytes(path, value.encode("ascii") + b"\n", mode=0o644)
            return value

    def files(self, job_id: str) -> JobFiles:
        return JobFiles(self.work_dir, job_id)

    def checked(self, path: str) -> str:
        """The guard every write and delete goes through (see ``inside_work_dir``)."""
        return inside_work_dir(self.work_dir, path)

    def held_jobs(self) -> List[str]:
        """Jobs with a state file, oldest first (normally none or one). Anything else
        under ``jobs/`` (a name that is not a canonical UUID, a state file that is not
        a regular file) is quarantined, so it can never be taken for a job again."""
        root = os.path.join(self.work_dir, "jobs")
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return []
        held = []
        for name in names:
            state = os.path.join(root, name, "state.json")
            if not is_canonical_uuid(name):
                self.quarantine_path(os.path.join(root, name), name, "its name is not a job id")
            elif os.path.lexists(state):
                held.append((_mtime(state), name))
        return [name for _, name in sorted(held)]

    def load(self, job_id: str) -> Optional[Dict[str, Any]]:
        """The job's state, or None when there is none or it cannot be used (``load_checked``)."""
        try:
            return self.load_checked(job_id)
        except (OSError, ValueError):
            return None

    def load_checked(self, job_id: str) -> Dict[str, Any]:
        """The state file as a checked mapping; ValueError/OSError saying what is wrong."""
        path = self.files(job_id).state
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("state.json is not a regular file")
        if st.st_size > STATE_MAX_BYTES:
            raise ValueError("state.json is %d bytes (at most %d)" % (st.st_size, STATE_MAX_BYTES))
        try:
            state = atomic.read_json(path)
        except RecursionError:
            raise ValueError("state.json is nested too deeply") from None
        except UnicodeDecodeError:
            raise ValueError("state.json is not UTF-8") from None
        if not isinstance(state, dict):
            raise ValueError("state.json holds %s, not an object" % type(state).__name__)
        if state.get("job_id", job_id) != job_id:
            raise ValueError("state.json names another job")
        for key, types in _STATE_TYPES.items():
            value = state.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool) and bool not in types):
                raise ValueError("state.json: %r has the wrong type (%s)" % (key, type(value).__name__))
        pgid = state.get("worker_pgid")
        if pgid is not None and pgid <= 1:
            raise ValueError("state.json: worker_pgid %d is not a training process group" % pgid)
        return state

    def quarantine(self, job_id: str, reason: str) -> str:
        """Move an unusable job directory aside; it costs that job only."""
        return self.quarantine_path(self.files(job_id).dir, job_id, reason)

    def quarantine_path(self, path: str, name: str, reason: str) -> str:
        root = os.path.join(self.work_dir, "quarantine")
        os.makedirs(root, mode=0o750, exist_ok=True)
        dest = os.path.join(root, "%s-%d" % (_safe_name(name), int(time.time() * 1000)))
        os.replace(self.checked(path), self.checked(dest))
        log.error("quarantined %s (%s): moved to %s; the runner carries on without it",
                  _safe_name(name), reason, dest)
        return dest

    def save(self, job_id: str, state: Dict[str, Any]) -> None:
        files = self.files(job_id)
        os.makedirs(self.checked(files.dir), mode=0o750, exist_ok=True)
        atomic.write_json(self.checked(files.state), state)

    def update(self, job_id: str, **changes: Any) -> Dict[str, Any]:
        state = self.load(job_id) or {"job_id": job_id}
        state.update(changes)
        self.save(job_id, state)
        return state

    def forget(self, job_id: str) -> None:
        """The last step of a job: drop its directory (state first, so a crash halfway
        leaves no job that looks held)."""
        files = self.files(job_id)
        self.checked(files.dir)
        try:
            os.unlink(files.state)
            atomic.fsync_dir(files.dir)
        except FileNotFoundError:
            pass
        shutil.rmtree(files.dir, ignore_errors=True)

    def results_dir(self, job_id: str) -> str:
        return os.path.join(self.work_dir, "results", canonical_uuid(job_id, "job id"))

    def has_local_result(self, job_id: str) -> bool:
        return os.path.exists(os.path.join(self.results_dir(job_id), "result.json"))

    def local_results(self) -> List[Dict[str, Any]]:
        """Jobs trained (or failed) here and kept locally: ``[{job_id, failed, accuracy, path}]``."""
        root = os.path.join(self.work_dir, "results")
        out = []
        try:
            names = sorted(os.listdir(root))
        except OSError:
            return []
        for name in names:
            if not is_canonical_uuid(name):
                continue
            path = os.path.join(root, name, "result.json")
            try:
                if os.path.getsize(path) > STATE_MAX_BYTES << 4:
                    continue
                data = atomic.read_json(path)
            except (OSError, ValueError, RecursionError):
                continue
            if not isinstance(data, dict):
                continue
            failed = data.get("failed")
            accuracy = data.get("accuracy")
            out.append({"job_id": name, "failed": failed if isinstance(failed, str) else None,
                        "accuracy": accuracy if isinstance(accuracy, (int, float)) else None,
                        "path": os.path.dirname(path)})
        return out

    def local_failure_hash(self, job_id: str) -> Optional[str]:
        """For a job that failed here and was kept locally: the fingerprint of the dataset
        it failed on (retried when that changes); None otherwise."""
        try:
            data = atomic.read_json(os.path.join(self.results_dir(job_id), "result.json"))
        except (OSError, ValueError, RecursionError):
            return None
        if isinstance(data, dict) and data.get("failed") is not None:
            value = data.get("dataset_hash")
            return value if isinstance(value, str) else ""
        return None


STATE_MAX_BYTES = 1 << 20
# Types of the state fields the runner acts on; anything else in a state file is a reason to quarantine it.
_STATE_TYPES = {
    "job_id": (str,), "dataset_id": (str,), "lease_id": (str,), "local_only": (bool,),
    "seed": (int,), "features_url": (str,), "features_sha256": (str,), "features_size": (int,),
    "claimed_at": (int, float), "stage": (str,), "failure": (str,), "worker_pgid": (int,),
    "integrity_failures": (int,), "train_attempts": (int,), "dataset_hash": (str,),
}


_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-_.")


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _safe_name(name: str) -> str:
    """A file-name-safe rendering of a name found on disk (for the quarantine entry)."""
    keep = "".join(c if c in _NAME_CHARS else "_" for c in name[:64])
    return keep.lstrip(".") or "unnamed"
