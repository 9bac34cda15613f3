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

A job directory with a ``state.json`` is a job this runner holds; after a crash it is
resumed from there. Deleting the directory is the last step of a job.
"""
import os
import shutil
import uuid
from typing import Any, Dict, List, Optional

from abrunnerd import atomic


class JobFiles:
    """Paths of one job's directory."""

    def __init__(self, work_dir: str, job_id: str) -> None:
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

    def held_jobs(self) -> List[str]:
        """Jobs with a state file, oldest first (normally none or one)."""
        root = os.path.join(self.work_dir, "jobs")
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            return []
        held = [n for n in names if os.path.exists(os.path.join(root, n, "state.json"))]
        return sorted(held, key=lambda n: os.path.getmtime(os.path.join(root, n, "state.json")))

    def load(self, job_id: str) -> Optional[Dict[str, Any]]:
        try:
            return atomic.read_json(self.files(job_id).state)
        except (OSError, ValueError):
            return None

    def save(self, job_id: str, state: Dict[str, Any]) -> None:
        files = self.files(job_id)
        os.makedirs(files.dir, mode=0o750, exist_ok=True)
        atomic.write_json(files.state, state)

    def update(self, job_id: str, **changes: Any) -> Dict[str, Any]:
        state = self.load(job_id) or {"job_id": job_id}
        state.update(changes)
        self.save(job_id, state)
        return state

    def forget(self, job_id: str) -> None:
        """The last step of a job: drop its directory (state first, so a crash halfway
        leaves no job that looks held)."""
        files = self.files(job_id)
        try:
            os.unlink(files.state)
            atomic.fsync_dir(files.dir)
        except FileNotFoundError:
            pass
        shutil.rmtree(files.dir, ignore_errors=True)

    def results_dir(self, job_id: str) -> str:
        return os.path.join(self.work_dir, "results", job_id)

    def has_local_result(self, job_id: str) -> bool:
        return os.path.exists(os.path.join(self.results_dir(job_id), "result.json"))
