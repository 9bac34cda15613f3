"""The owner's rows for the pages, read without the large blobs; another owner's row is 404."""
import json
import uuid
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from .. import jobs as job_store, leases
from ..errors import ApiError
from ..tables import datasets, jobs, lowlevel, snapshots

_JOB_COLUMNS = [jobs.c.id, jobs.c.owner_id, jobs.c.dataset_id, jobs.c.snapshot_id, jobs.c.status,
                jobs.c.status_msg, jobs.c.eval_location, jobs.c.options, jobs.c.seed, jobs.c.created,
                jobs.c.updated, jobs.c.runner_name, jobs.c.runner_version, jobs.c.lease_expires,
                jobs.c.progress, jobs.c.progress_at, jobs.c.stalled_at, jobs.c.stall_count,
                jobs.c.upload_sha256, jobs.c.lease_id, jobs.c.cells_done]
NOT_FOUND_JOB = "No such job"
NOT_FOUND_DATASET = "Can't find this dataset."


def canonical_id(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ApiError(404, "not_found", what)


def owner_datasets(conn, owner_id: int) -> List[Dict[str, Any]]:
    rows = conn.execute(sa.select(datasets.c.id, datasets.c.name, datasets.c.classes, datasets.c.created,
                                  datasets.c.public)
                        .where(datasets.c.owner_id == owner_id).order_by(datasets.c.created.desc()))
    out = []
    for r in rows:
        classes = json.loads(r.classes)
        out.append({"id": r.id, "name": r.name, "created": r.created, "public": bool(r.public),
                    "classes": len(classes), "recordings": len({m for c in classes for m in c["recordings"]})})
    return out


def dataset(conn, dataset_id: str, owner_id: int):
    row = conn.execute(sa.select(datasets).where(
        datasets.c.id == canonical_id(dataset_id, NOT_FOUND_DATASET))).first()
    if row is None or row.owner_id != owner_id:
        raise ApiError(404, "not_found", NOT_FOUND_DATASET)
    return row


def artists(conn, mbids: List[str], owner_id: int) -> Dict[str, Optional[str]]:
    """Recording → artist (None when its document names none), for the owner's stored documents
    (a dataset trains on its owner's documents)."""
    out: Dict[str, Optional[str]] = {}
    for start in range(0, len(mbids), 500):
        rows = conn.execute(sa.select(lowlevel.c.mbid, lowlevel.c.artist)
                            .where(lowlevel.c.owner_id == owner_id, lowlevel.c.mbid.in_(mbids[start:start + 500])))
        out.update({r.mbid: r.artist for r in rows})
    return out


def owner_jobs(conn, owner_id: int, dataset_id: Optional[str] = None, limit: int = 500) -> List[Any]:
    query = (sa.select(*(_JOB_COLUMNS + [datasets.c.name.label("dataset_name")]))
             .select_from(jobs.join(datasets, jobs.c.dataset_id == datasets.c.id))
             .where(jobs.c.owner_id == owner_id).order_by(jobs.c.created.desc(), jobs.c.id).limit(limit))
    if dataset_id is not None:
        query = query.where(jobs.c.dataset_id == dataset_id)
    return list(conn.execute(query))


def job(conn, job_id: str, owner_id: int, with_result: bool = False):
    columns = _JOB_COLUMNS + [datasets.c.name.label("dataset_name")] + ([jobs.c.result] if with_result else [])
    row = conn.execute(sa.select(*columns).select_from(jobs.join(datasets, jobs.c.dataset_id == datasets.c.id))
                       .where(jobs.c.id == canonical_id(job_id, NOT_FOUND_JOB))).first()
    if row is None or row.owner_id != owner_id:
        raise ApiError(404, "not_found", NOT_FOUND_JOB)
    return row


def snapshot_classes(conn, job_row) -> List[Dict[str, Any]]:
    data = conn.execute(sa.select(snapshots.c.data).where(snapshots.c.id == job_row.snapshot_id)).scalar_one()
    return json.loads(data)["classes"]


def model_bytes(conn, job_row) -> Optional[bytes]:
    data = conn.execute(sa.select(jobs.c.model).where(jobs.c.id == job_row.id)).scalar()
    return bytes(data) if data is not None else None


def bundle_bytes(conn, job_row) -> bytes:
    return bytes(job_store.bundle_of(conn, job_row).bundle)


def live_state(job_row, ts: float) -> Dict[str, Any]:
    """What the progress parts of the pages show: status, fraction, ETA, stalled."""
    status = leases.effective_status(job_row, ts)
    progress = json.loads(job_row.progress) if job_row.progress else {}
    fraction = progress.get("fraction")
    if fraction is None and progress.get("cells_done") is not None and progress.get("cells_total"):
        fraction = progress["cells_done"] / progress["cells_total"]
    if status == "done":
        fraction = 1.0
    eta = progress.get("eta_seconds")
    remaining = None
    if status == "running" and isinstance(eta, (int, float)):
        remaining = max(0.0, eta - max(0.0, ts - (_timestamp(progress.get("at")) or ts)))
    finished = status in leases.FINISHED
    return {"status": status, "fraction": None if fraction is None else max(0.0, min(1.0, float(fraction))),
            "stage": progress.get("stage"), "message": progress.get("message"),
            "cells_done": progress.get("cells_done"), "cells_total": progress.get("cells_total"),
            "remaining": remaining, "ends_at": ts + remaining if remaining is not None else None,
            "stalled": job_row.stalled_at is not None and not finished,
            "finished": finished, "last_ping": progress.get("at")}


def _timestamp(http_date: Any) -> Optional[float]:
    """UNIX time of a stored HTTP-date (when the progress was reported), None if unreadable."""
    try:
        return parsedate_to_datetime(http_date).timestamp()
    except (TypeError, ValueError):
        return None
