"""The job being processed, the ways a step ends it, and the small files next to it."""
import hashlib
import json
import os
from typing import Any, Dict, Optional

from abrunnerd import status as st
from abrunnerd.state import JobFiles

SHOWN_FILE = "shown.json"  # in the job directory: the position every surface last showed


class Job:
    """The job being processed: its durable state plus the live lease facts."""

    def __init__(self, job_id: str, files: JobFiles, state: Dict[str, Any]) -> None:
        self.id = job_id
        self.files = files
        self.state = state
        self.canceled = False  # by the owner (server) or locally (D-Bus)
        self.cancel_source = ""
        self.lease_lost = False
        self.stalled = False
        self.next_ping = 0.0

    @property
    def dataset_id(self) -> Optional[str]:
        return self.state.get("dataset_id")

    @property
    def local_only(self) -> bool:
        return bool(self.state.get("local_only"))


class JobEnded(Exception):
    """The job ended for a reason other than success (canceled, lease lost, failed) and
    its files are already tidied up."""


class JobFailed(Exception):
    """A step found that the job cannot succeed; the loop reports it with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobDropped(Exception):
    """A ping said the job is canceled or its lease lost; the loop tidies up."""


def read_shown(job_dir: str) -> Any:
    """The saved position, or None (missing, oversized or garbled: the worker's figures
    take over; ProgressTracker.from_saved checks every value)."""
    try:
        fd = os.open(os.path.join(job_dir, SHOWN_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        data = os.read(fd, 4097)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return json.loads(data.decode("utf-8")) if len(data) <= 4096 else None
    except ValueError:
        return None


def dataset_hash(details: Dict[str, Any]) -> str:
    """A fingerprint of what a job trains (classes and recordings): a failed local job is
    tried again when its dataset changes (AB-only servers keep the job pending)."""
    data = json.dumps([details.get("dataset", {}).get("classes"), details.get("options")], sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def pct(progress: st.ProgressTracker) -> str:
    return "%.0f%%" % (100 * progress.fraction) if progress.total else "the start"
