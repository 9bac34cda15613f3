"""Keeping the lease: re-claim a held job after a restart, and ping while it runs.

Pings are best effort: a failed ping is a warning (once), never a failed job. Their
answers cancel the job, report a lost lease, flag it stalled or change the interval
(clamped by ``status.effective_ping_interval``).
"""
import logging
import os
import time
from typing import Optional, Set

from abrunnerd import status as st
from abrunnerd.answers import Lease
from abrunnerd.client import BadAnswerError, ClientError, Conflict, Interrupted, NotFound
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.job import Job, JobEnded, JobFailed
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.retry import Trouble
from abrunnerd.training_process import kill_stale

log = logging.getLogger("abrunnerd")


class LeaseKeeper:
    def __init__(self, parts: Parts, trouble: Trouble) -> None:
        self.parts = parts
        self.trouble = trouble
        self.ping_interval = float(parts.cfg.ping_interval)
        self._resumed: Set[str] = set()

    def reset(self) -> None:
        """A new configuration: its ping_interval until the server says otherwise."""
        self.ping_interval = float(self.parts.cfg.ping_interval)

    def adopt(self, lease: Lease) -> None:
        self.ping_interval = st.effective_ping_interval(self.parts.cfg.ping_interval, lease.ping_interval)

    def resume(self, job: Job) -> None:
        """A held job found at start or after an error: its stale training processes are
        killed and its lease re-claimed with its lease id."""
        parts = self.parts
        kill_stale(job.state.get("worker_pgid"))
        if job.id not in self._resumed:  # once, not on every retry after a network error
            self._resumed.add(job.id)
            where = st.position(parts.status.snapshot())
            log.info("resuming job %s from %s%s", job.id, job.state.get("stage", "claimed"),
                     " at " + where if where else "",
                     extra=job_fields(job.id, job.dataset_id, job.state.get("stage"), parts.progress.fraction))
        if job.local_only or os.path.exists(job.files.result) or job.state.get("failure"):
            return  # the upload (or fail report) itself checks the lease
        assert parts.client is not None
        try:
            lease = parts.client.claim(job.id, parts.runner_id, parts.cfg.runner_name, job.state.get("lease_id"))
        except (Conflict, NotFound) as exc:
            log.warning("job %s is no longer ours (%s); dropping its local state", job.id, exc,
                        extra=job_fields(job.id, job.dataset_id))
            parts.forget(job)
            raise JobEnded()
        except BadAnswerError as exc:
            raise JobFailed("the claim answer is malformed: %s" % exc.problem)
        job.state = parts.store.update(job.id, lease_id=lease.lease_id or job.state.get("lease_id"),
                                       features_url=lease.features_url or job.state.get("features_url"),
                                       features_sha256=lease.features_sha256 or job.state.get("features_sha256"),
                                       features_size=lease.features_size or job.state.get("features_size"))
        self.adopt(lease)

    def tick(self, job: Job, stage: str, fraction: Optional[float] = None) -> None:
        """Called often while a job runs: ping when due, feed the watchdog, update STATUS."""
        parts = self.parts
        if fraction is not None:
            parts.status.update(fraction=fraction)
        parts.notifier.watchdog()
        parts.notifier.status(st.summary(parts.status.snapshot()))
        if job.local_only or time.monotonic() < job.next_ping:
            return
        job.next_ping = time.monotonic() + self.ping_interval
        self.ping(job, stage)

    def ping(self, job: Job, stage: str) -> None:
        """Best effort: a failed ping is a warning (once), never a failed job."""
        parts = self.parts
        assert parts.client is not None
        snap = parts.status.snapshot()
        eta = snap.get("eta_seconds")
        body = {"lease_id": job.state.get("lease_id"), "runner_name": parts.cfg.runner_name, "stage": stage,
                "fraction": round(float(snap.get("fraction") or 0.0), 4),
                "eta_seconds": eta if isinstance(eta, int) and eta >= 0 else None,
                "message": str(snap.get("message") or "")[:500],
                "cells_done": int(snap.get("cells_done") or 0), "cells_total": int(snap.get("cells_total") or 0)}
        try:
            answer = parts.client.ping(job.id, body)
        except Interrupted:
            return  # stopping: the caller sees the flag
        except Conflict as exc:
            if exc.code == "job_finished":
                log.info("the server says job %s is already finished; stopping work on it", job.id,
                         extra=job_fields(job.id, job.dataset_id, stage))
            else:
                log.warning("job %s: lease lost (%s); stopping work on it", job.id, exc,
                            extra=job_fields(job.id, job.dataset_id, stage))
            job.lease_lost = True
            return
        except ClientError as exc:
            if self.trouble.kind != "ping":
                self.trouble.kind = "ping"
                log.warning("status ping failed (%s); training goes on, retrying every %.0f s",
                            exc, self.ping_interval, extra=job_fields(job.id, job.dataset_id, stage))
            return
        if self.trouble.kind == "ping":
            log.info("status pings reach %s again", parts.cfg.server_url)
            self.trouble.kind = None
        if answer.ping_interval:
            self.ping_interval = st.effective_ping_interval(parts.cfg.ping_interval, answer.ping_interval)
        if answer.cancel:
            job.canceled, job.cancel_source = True, "server"
        if answer.stalled != job.stalled:
            job.stalled = answer.stalled
            if job.stalled:
                log.warning("the server flagged job %s stalled (no finished cell for its stall time) "
                            "and offers it to other runners; training goes on until one claims it",
                            job.id, extra=job_fields(job.id, job.dataset_id, stage))
            else:
                log.info("job %s is no longer flagged stalled", job.id, extra=job_fields(job.id, job.dataset_id))
