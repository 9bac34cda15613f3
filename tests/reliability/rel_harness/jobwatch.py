"""Watch a job from both ends: the runner's durable state in work_dir and the server's
view, to time kills at a chosen stage and to judge the end result."""
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any, Dict, Optional

import requests


def local_state(work_dir: Path, job_id: str) -> Dict[str, Any]:
    """The runner's state.json + progress.json of the job ({} when absent or mid-replace)."""
    d = Path(work_dir) / "jobs" / job_id
    out: Dict[str, Any] = {}
    for name in ("state.json", "progress.json"):
        try:
            out.update(json.loads((d / name).read_text()))
        except (OSError, ValueError):
            pass
    return out


def server_job(base_url: str, token: str, job_id: str) -> Dict[str, Any]:
    r = requests.get("%s/api/v1/datasets/evaluation/jobs/%s" % (base_url, job_id),
                     headers={"Authorization": "Token " + token}, timeout=30)
    r.raise_for_status()
    return r.json()


def server_model(base_url: str, token: str, job_id: str) -> Optional[str]:
    r = requests.get("%s/api/v1/datasets/evaluation/jobs/%s/model" % (base_url, job_id),
                     headers={"Authorization": "Token " + token}, timeout=30)
    return hashlib.sha256(r.content).hexdigest() if r.status_code == 200 else None


def comparable(result: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The result without what legitimately differs between runs (who ran it)."""
    if result is None:
        return None
    out = dict(result)
    out.pop("runner", None)
    return out


def wait_stage(work_dir: Path, job_id: str, stage: str, timeout: float, rng: random.Random,
               finished) -> Optional[bool]:
    """Block until the job reaches ``stage`` (then a random extra delay typical of it).

    Returns False when the job finished (``finished()``) before the moment came, and
    None when the job is already past ``stage`` (so the caller can go on to the next
    planned moment instead of waiting for the end: on a quiet machine the grid can be
    over before a second training kill).
    ``download`` is everything before the first grid cell (claim, download, the training
    process starting), ``training`` waits for at least one new finished cell so the kill
    lands mid-grid, ``upload`` is between the result file and the server's answer.
    The local state is polled every 5 ms; the server (slower) only every half second.
    """
    deadline = time.monotonic() + timeout
    start_cells = None
    next_server_check = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_server_check:
            next_server_check = now + 0.5
            if finished():
                return False
        st = local_state(work_dir, job_id)
        s = st.get("stage")
        if stage == "download" and (s in ("claimed", "downloading") or
                                    (s == "training" and not st.get("cells_done"))):
            time.sleep(rng.uniform(0.0, 0.15))
            return True
        if stage == "training" and s == "training":
            cells = st.get("cells_done")
            if start_cells is None and cells is not None:
                start_cells = cells
            if cells is not None and cells > start_cells:
                time.sleep(rng.uniform(0.0, 2.0))
                return True
        uploading = s == "uploading" or (Path(work_dir) / "jobs" / job_id / "result.json").exists()
        if stage in ("download", "training") and uploading:
            return None
        if stage == "upload" and uploading:
            time.sleep(rng.uniform(0.0, 0.1))  # between the result file and the server's 201
            return True
        if stage == "any":
            time.sleep(rng.uniform(0.0, 6.0))
            return True
        time.sleep(0.005)
    raise TimeoutError("job %s never reached stage %s" % (job_id, stage))
