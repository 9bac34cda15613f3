"""Evaluation jobs in the database: submit, list, claim, ping, fail, cancel, result.

Every state change is one transaction that reads the job row with a lock
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` holds the write
lock already), decides with the pure rules of ``leases.py`` and writes with an
UPDATE conditioned on what it read, so concurrent claimers have exactly one winner.
"""
import json
import uuid
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa

from . import events, leases, quota
from .config import ServerConfig
from .datasets import check_classes, check_documents_present, get_dataset
from .errors import ApiError, conflict, not_found
from .options import normalize_options
from .tables import bundles, dataset_recordings, datasets, jobs, lowlevel, snapshots
from .timefmt import http_date, now

MAX_SEED = 2 ** 31 - 1


# Every status a job can have, in the order of its life (docs/protocol.md, "Job states").
STATES = ("preparing", "pending", "running", "done", "failed", "canceled")


def missing_documents(conn, dataset_id: str, owner_id: int) -> List[str]:
    """The dataset's recordings without a document of the owner: one query on the index of
    the dataset's recordings (no document is read)."""
    have = sa.select(lowlevel.c.mbid).where(lowlevel.c.owner_id == owner_id,
                                            lowlevel.c.mbid == dataset_recordings.c.mbid)
    return [row.mbid for row in conn.execute(
        sa.select(dataset_recordings.c.mbid)
        .where(dataset_recordings.c.dataset_id == dataset_id, ~sa.exists(have))
        .order_by(dataset_recordings.c.mbid))]


def submit(engine: sa.engine.Engine, dataset_id: str, owner_id: int, location: str, options: Any,
           seed: Optional[int], build_owner: Optional[str] = None, build_lease: float = 0,
           quota_bytes: int = 0) -> str:
    """Check what can be checked at once and queue a job in status ``preparing``.

    The snapshot and its features bundle (a minute for 1,200 recordings) are built
    later, outside the request, by a builder process (``abserver/builder.py``), which
    flips the job to ``pending``; runners neither see nor can claim it before. Here only
    cheap checks run: the fields, the dataset's classes, and one query for the owner's
    documents. ``build_owner`` (the admin CLI, which builds in its own process) inserts the
    job already leased to that builder for ``build_lease`` seconds. An owner without room
    for even the snapshot's definition (``quota_bytes``) is refused here; the builder checks
    the snapshot's exact size when it stores it."""
    if location not in ("remote", "local"):
        raise ApiError(400, "bad_field", "eval_location must be \"remote\" or \"local\"")
    opts = normalize_options(options)
    if seed is None:
        seed = 42
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ApiError(400, "bad_field", "seed must be an integer between 0 and %d" % MAX_SEED)
    with engine.connect() as conn:
        dataset = get_dataset(conn, dataset_id, owner_id)
        check_classes(json.loads(dataset.classes))
        missing = missing_documents(conn, dataset_id, owner_id)
        # The snapshot stores at least a copy of the dataset's definition; its bundle's size is
        # known only once built (the builder checks again, exactly, when it stores).
        quota.check(conn, owner_id, max(1, dataset.size_bytes or 0), quota_bytes,
                    "a snapshot of dataset %s" % dataset_id, serialise=False)
    check_documents_present(missing)
    with engine.begin() as conn:
        job_id = str(uuid.uuid4())
        ts = now()
        conn.execute(jobs.insert().values(
            id=job_id, owner_id=owner_id, dataset_id=dataset_id, snapshot_id=None,
            status="preparing", eval_location=location, options=json.dumps(opts), seed=seed,
            created=ts, updated=ts, stall_count=0, build_attempts=1 if build_owner else 0,
            build_owner=build_owner, build_lease_expires=ts + build_lease if build_owner else None,
            status_msg="waiting for its snapshot and features bundle to be built",
        ))
        events.record(conn, job_id, "submitted", {"location": location})
    return job_id


def not_ready(job) -> ApiError:
    return conflict("job_preparing", "job %s is still being prepared (its snapshot and features bundle are "
                    "being built); it is listed once ready" % job.id)


def list_pending_remote(conn, owner_id: int) -> List[Dict[str, Any]]:
    """The owner's claimable remote jobs, oldest first (AB's list shape)."""
    ts = now()
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.created, datasets.c.name)
        .select_from(jobs.join(datasets, jobs.c.dataset_id == datasets.c.id))
        .where(jobs.c.owner_id == owner_id, jobs.c.eval_location == "remote")
        .where(sa.or_(jobs.c.status == "pending",
                      sa.and_(jobs.c.status == "running", jobs.c.lease_expires < ts)))
        .order_by(jobs.c.created, jobs.c.id)
    )
    return [{"created": http_date(r.created), "dataset_name": r.name, "job_id": r.id} for r in rows]


def all_jobs(conn) -> List[Any]:
    return list(conn.execute(sa.select(jobs).order_by(jobs.c.created)))


def _check_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise not_found("No such job")


def get_job(conn, job_id: str, owner_id: int, lock: bool = False):
    """The owner's job row; 404 for unknown ids and for other owners' jobs alike."""
    query = sa.select(jobs).where(jobs.c.id == _check_id(job_id))
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None or row.owner_id != owner_id:
        raise not_found("No such job")
    return row


def snapshot_of(conn, job) -> Any:
    return conn.execute(sa.select(snapshots.c.id, snapshots.c.data, snapshots.c.bundle_sha256,
                                  snapshots.c.created)
                        .where(snapshots.c.id == job.snapshot_id)).first()


def bundle_digest(conn, job) -> Tuple[str, int]:
    """(SHA-256, size) of the job's features bundle, without loading it."""
    row = conn.execute(sa.select(bundles.c.sha256, bundles.c.size_bytes)
                       .select_from(snapshots.join(bundles, bundles.c.sha256 == snapshots.c.bundle_sha256))
                       .where(snapshots.c.id == job.snapshot_id)).first()
    return row[0], int(row[1])


def bundle_of(conn, job) -> Any:
    return conn.execute(sa.select(bundles.c.data.label("bundle"), bundles.c.sha256.label("bundle_sha256"))
                        .select_from(snapshots.join(bundles, bundles.c.sha256 == snapshots.c.bundle_sha256))
                        .where(snapshots.c.id == job.snapshot_id)).first()


def job_details(conn, job) -> Dict[str, Any]:
    """AB's job-details shape; the embedded dataset is the job's frozen snapshot (while the job
    is ``preparing``, the dataset as it is: the snapshot freezes it when built)."""
    snap = snapshot_of(conn, job) if job.snapshot_id is not None else None
    dataset = conn.execute(sa.select(datasets).where(datasets.c.id == job.dataset_id)).first()
    data = json.loads(snap.data) if snap is not None else {
        "classes": json.loads(dataset.classes), "description": dataset.description, "name": dataset.name}
    ts = now()
    return {
        "created": http_date(job.created),
        "dataset": {
            "author": dataset.owner_id,
            "classes": data["classes"],
            "created": http_date(dataset.created),
            "description": data["description"],
            "id": dataset.id,
            "last_edited": http_date(dataset.last_edited),
            "name": data["name"],
            "num_recordings": sum(len(c["recordings"]) for c in data["classes"]),
            "public": bool(dataset.public),
        },
        "dataset_id": job.dataset_id,
        "error_code": job.error_code,
        "eval_location": job.eval_location,
        "id": job.id,
        "options": json.loads(job.options),
        "progress": json.loads(job.progress) if job.progress else None,
        "result": json.loads(job.result) if job.result else None,
        "seed": job.seed,
        "snapshot_id": job.snapshot_id,
        "stalled": job.stalled_at is not None and job.status == "pending",
        "status": leases.effective_status(job, ts),
        "status_msg": job.status_msg,
        "testing_snapshot": None,
        "training_snapshot": None,
        "updated": http_date(job.updated),
    }


def claim(conn, job_id: str, owner_id: int, body: Dict[str, Any], config: ServerConfig) -> Dict[str, Any]:
    job = get_job(conn, job_id, owner_id, lock=True)
    ts = now()
    lease_id = leases.decide_claim(job, body["runner_id"], body.get("lease_id"), ts)
    resumed = lease_id == job.lease_id
    values = dict(
        status="running", runner_id=body["runner_id"], runner_name=body["runner_name"],
        runner_version=body["runner_version"], lease_id=lease_id,
        lease_expires=ts + config.lease_seconds, updated=ts, stalled_at=None, cells_moved_at=ts,
    )
    if not resumed:
        values.update(cells_done=None, status_msg=None, progress=json.dumps(
            leases.progress_dict({"stage": "claimed", "runner_name": body["runner_name"],
                                  "runner_version": body["runner_version"]}, http_date(ts))))
    _update(conn, job, values)
    events.record(conn, job.id, "resumed" if resumed else "claimed", {"runner_name": body["runner_name"]})
    return {"job_id": job.id, "lease_id": lease_id, "lease_seconds": config.lease_seconds,
            "ping_interval": config.ping_interval, "seed": job.seed, "resumed": resumed}


def _update(conn, job, values: Dict[str, Any]) -> None:
    """UPDATE conditioned on the row being as read: a lost race is a 409, never a double win."""
    result = conn.execute(
        jobs.update()
        .where(jobs.c.id == job.id, jobs.c.status == job.status, jobs.c.updated == job.updated,
               (jobs.c.lease_id == job.lease_id) if job.lease_id is not None else jobs.c.lease_id.is_(None))
        .values(**values)
    )
    if result.rowcount != 1:
        raise conflict("already_claimed", "job changed while this request was handled; retry")


_STATE_COLUMNS = ("id, owner_id, status, eval_location, lease_id, runner_id, lease_expires, cells_done, "
                  "cells_moved_at, stalled_at, stall_count, updated, status_msg")
_SELECT_STATE = sa.text("SELECT %s FROM jobs WHERE id = :id" % _STATE_COLUMNS)
_SELECT_STATE_LOCKED = sa.text("SELECT %s FROM jobs WHERE id = :id FOR UPDATE" % _STATE_COLUMNS)
_UPDATE_PING = sa.text(
    "UPDATE jobs SET status = :status, updated = :updated, cells_done = :cells_done, runner_name = :runner_name, "
    "runner_version = :runner_version, progress = :progress, lease_expires = :lease_expires, "
    "cells_moved_at = :cells_moved_at, stalled_at = :stalled_at, stall_count = :stall_count, "
    "status_msg = :status_msg "
    "WHERE id = :id AND status = :old_status AND updated = :old_updated AND lease_id = :old_lease_id")


def get_job_state(conn, job_id: str, owner_id: int, lock: bool = False):
    """Only the lease/state columns: the hot path of pings (textual SQL, no blobs).

    ``lock`` takes the row lock on PostgreSQL (inside a transaction); without it the
    caller relies on an UPDATE conditioned on what was read."""
    query = _SELECT_STATE_LOCKED if lock and conn.dialect.name == "postgresql" else _SELECT_STATE
    row = conn.execute(query, {"id": _check_id(job_id)}).first()
    if row is None or row.owner_id != owner_id:
        raise not_found("No such job")
    return row


def ping(conn, job_id: str, owner_id: int, body: Dict[str, Any], config: ServerConfig) -> Dict[str, Any]:
    """Apply a ping. Works in a transaction or in autocommit mode: the UPDATE is conditioned on
    the state read, and a concurrent change (another ping of the same job) is re-read and retried."""
    for _attempt in range(5):
        answer = _ping_once(conn, job_id, owner_id, body, config)
        if answer is not None:
            return answer
    raise ApiError(503, "busy", "the job is being updated concurrently; retry the ping")


def _ping_once(conn, job_id: str, owner_id: int, body: Dict[str, Any], config: ServerConfig
               ) -> Optional[Dict[str, Any]]:
    job = get_job_state(conn, job_id, owner_id, lock=False)
    ts = now()
    decision = leases.decide_ping(job, body["lease_id"], body["stage"], body.get("cells_done"),
                                  ts, config.stall_seconds)
    answer = {"cancel": decision.status == "canceled", "ping_interval": config.ping_interval,
              "lease_seconds": config.lease_seconds, "stalled": decision.stalled}
    if decision.status in ("canceled", "done"):
        return answer  # nothing to record
    values: Dict[str, Any] = {
        "status": decision.status, "updated": ts, "cells_done": body.get("cells_done"),
        "runner_name": body["runner_name"], "runner_version": body["runner_version"],
        "progress": json.dumps(leases.progress_dict(body, http_date(ts))),
        "lease_expires": ts + config.lease_seconds if decision.renew else job.lease_expires,
        "cells_moved_at": ts if decision.cells_moved else job.cells_moved_at,
        "stalled_at": None if decision.cells_moved else job.stalled_at,
        "stall_count": job.stall_count or 0, "status_msg": job.status_msg,
        "id": job.id, "old_status": job.status, "old_updated": job.updated, "old_lease_id": job.lease_id,
    }
    if decision.stalled and job.stalled_at is None:
        values["stalled_at"] = ts
        values["stall_count"] = (job.stall_count or 0) + 1
        values["status_msg"] = "stalled: no grid cell finished for %d s; offered to other runners" % (
            ts - job.cells_moved_at)
    elif not decision.stalled and job.stalled_at is not None:
        values["status_msg"] = None
    if conn.execute(_UPDATE_PING, values).rowcount != 1:
        return None
    events.record(conn, job.id, "ping", {k: body.get(k) for k in ("stage", "cells_done", "cells_total",
                                                                   "eta_seconds", "message")})
    if values["stalled_at"] is not None and job.stalled_at is None:
        events.record(conn, job.id, "stalled", {"message": values["status_msg"]})
    elif values["stalled_at"] is None and job.stalled_at is not None:
        events.record(conn, job.id, "unstalled")
    return answer


def fail(conn, job_id: str, owner_id: int, lease_id: str, reason: str) -> None:
    job = get_job(conn, job_id, owner_id, lock=True)
    leases.check_upload_lease(job, lease_id, now())
    _update(conn, job, {"status": "failed", "status_msg": reason, "updated": now()})
    events.record(conn, job.id, "failed", {"reason": reason})


def cancel(conn, job_id: str, owner_id: int) -> str:
    job = get_job(conn, job_id, owner_id, lock=True)
    if job.status == "canceled":
        return "canceled"
    if job.status in ("done", "failed"):
        raise conflict("job_finished", "job is already %s and cannot be canceled" % job.status)
    _update(conn, job, {"status": "canceled", "status_msg": "canceled by the owner", "updated": now()})
    events.record(conn, job.id, "canceled")
    return "canceled"


def store_result(conn, job, result: Dict[str, Any], model: bytes, upload_sha256: str) -> None:
    text = json.dumps(result)  # ASCII-only: its length is its size (stored_bytes, the quota's measure)
    _update(conn, job, {"status": "done", "status_msg": None, "result": text, "model": model,
                        "upload_sha256": upload_sha256, "updated": now(), "stored_bytes": len(text) + len(model)})
    events.record(conn, job.id, "done", {"accuracy": result.get("accuracy")})
