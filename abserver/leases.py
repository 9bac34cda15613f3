"""Lease and stall rules as pure functions: what a claim or a ping does to a job.

Kept apart from the database so the rules (docs/protocol.md, "Job states") can be
read and tested on their own; ``jobs.py`` applies the decisions in one transaction.
"""
import uuid
from typing import Any, Dict, NamedTuple, Optional

from .errors import conflict

FINISHED = ("done", "failed", "canceled")


def lease_expired(job: Any, now: float) -> bool:
    return job.status == "running" and (job.lease_expires or 0) < now


def effective_status(job: Any, now: float) -> str:
    """``running`` whose lease ran out is ``pending`` again (it is offered to others)."""
    return "pending" if lease_expired(job, now) else job.status


def holds_lease(job: Any, runner_id: Optional[str], lease_id: Optional[str]) -> bool:
    return bool(lease_id) and job.lease_id == lease_id and (runner_id is None or job.runner_id == runner_id)


def decide_claim(job: Any, runner_id: str, lease_id: Optional[str], now: float) -> str:
    """The lease id the claimer gets, or ApiError 409.

    The same runner presenting its lease resumes with that lease while nobody else
    took the job (it is still running under that lease, or pending again after the
    lease expired or the job was flagged stalled); anyone else needs a pending job.
    """
    if job.eval_location != "remote":
        raise conflict("not_remote", "job is for local evaluation, runners cannot claim it")
    if job.status in FINISHED:
        raise conflict("job_finished", "job is already %s" % job.status)
    if job.status == "preparing":  # not listed either: its snapshot and bundle are not built yet
        raise conflict("job_preparing", "job is still being prepared (its snapshot and features bundle are "
                       "being built); it is listed once ready")
    if holds_lease(job, runner_id, lease_id):
        return lease_id  # type: ignore[return-value]
    if effective_status(job, now) == "pending":
        return str(uuid.uuid4())
    raise conflict("already_claimed", "job is claimed by another runner")


class PingDecision(NamedTuple):
    status: str  # the job's new status
    renew: bool  # extend the lease
    stalled: bool  # flagged stalled by this ping (or still stalled)
    cells_moved: bool  # cells_done changed (or the stage does not count cells)


def decide_ping(job: Any, lease_id: str, stage: str, cells_done: Optional[int],
                now: float, stall_seconds: int) -> PingDecision:
    """Apply one status ping. 409 ``lease_lost`` when another runner holds the job.

    Stall rule: while ``stage`` is ``training``, a ``cells_done`` that has not moved for
    ``stall_seconds`` flags the job stalled and puts it back to ``pending`` (offered to
    the queue). Pings keep being answered; if cells move again before anyone else
    claims it, the job runs on under the same lease.
    """
    if job.status == "canceled":
        return PingDecision("canceled", False, False, False)
    if job.lease_id != lease_id:
        raise conflict("lease_lost", "the lease expired and the job went to another runner")
    if job.status == "done":
        # Done under this very lease: the runner's upload was stored but it may not have
        # heard the answer. A plain 200 lets it retry the upload, which answers "replayed".
        return PingDecision("done", False, False, False)
    if job.status == "failed":
        raise conflict("job_finished", "job is already failed")
    counting = stage == "training" and cells_done is not None
    moved = (not counting) or cells_done != job.cells_done or job.cells_moved_at is None
    if moved:
        return PingDecision("running", True, False, True)
    if now - job.cells_moved_at >= stall_seconds:
        return PingDecision("pending", False, True, False)
    if job.status == "pending":  # lease expired meanwhile, cells still frozen: resume
        return PingDecision("running", True, False, False)
    return PingDecision("running", True, False, False)


def check_upload_lease(job: Any, lease_id: str, now: float) -> None:
    """A result or failure is accepted only from the lease holder of an unfinished job."""
    if job.status == "canceled":
        raise conflict("job_canceled", "the owner canceled this job")
    if job.lease_id != lease_id:
        raise conflict("lease_lost", "the lease expired and the job went to another runner")
    if job.status in ("done", "failed"):
        raise conflict("job_finished", "job is already %s" % job.status)


def progress_dict(body: Dict[str, Any], now_http: str) -> Dict[str, Any]:
    keys = ("stage", "fraction", "eta_seconds", "message", "cells_done", "cells_total",
            "runner_name", "runner_version")
    out = {k: body.get(k) for k in keys}
    out["at"] = now_http
    return out


__all__ = ["decide_claim", "decide_ping", "effective_status", "check_upload_lease", "PingDecision"]
