"""The ends of a job: upload the result, report a failure, or tidy up after a cancel or
a lost lease. Uploads and failure reports are retried until the server acknowledges
them (both are idempotent); what the server refuses is kept in ``work_dir/results``.
"""
import json
import logging
import time
from typing import Any, Callable, Dict

from abrunnerd import messages
from abrunnerd import status as st
from abrunnerd.backoff import Backoff
from abrunnerd.client import ApiError, AuthError, ClientError, Interrupted, NotFound
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.abonly import AbOnly
from abrunnerd.runner.job import Job, JobEnded, JobFailed, pct
from abrunnerd.runner.lease import LeaseKeeper
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.signals import TICK, Stopping

log = logging.getLogger("abrunnerd")


class Delivery:
    def __init__(self, parts: Parts, lease: LeaseKeeper, ab_only: AbOnly) -> None:
        self.parts = parts
        self.lease = lease
        self.ab_only = ab_only

    def upload(self, job: Job) -> None:
        """Upload result + model until the server acknowledges it (the PUT is idempotent)."""
        parts = self.parts
        files = job.files
        with open(files.result, "rb") as f:
            result = json.loads(f.read().decode("utf-8"))
        if job.local_only:
            self.ab_only.keep_locally(job)
            self._finished(job, result, "kept in " + parts.store.results_dir(job.id), messages.JOB_LOCAL_FINISHED)
            return
        with open(files.model, "rb") as f:
            model = f.read()
        parts.set(st.UPLOADING, stage="uploading", fraction=1.0, message="uploading the result")
        parts.stage(job, "uploading")
        assert parts.client is not None
        try:
            code = self._until_acknowledged(job, "uploading the result", lambda: parts.client.upload_result(  # type: ignore
                job.id, job.state.get("lease_id"), result, model))
        except AuthError:
            raise
        except ApiError as exc:
            if exc.status == 409 and exc.code in ("lease_lost", "job_canceled"):
                where = self.ab_only.keep_locally(job)
                log.warning("job %s dropped: %s (its result is kept in %s)", job.id,
                            "its lease went to another runner" if exc.code == "lease_lost" else "canceled by the owner",
                            where, extra=job_fields(job.id, job.dataset_id, "uploading"))
                parts.forget(job)
                raise JobEnded()
            if exc.status == 409 or exc.retryable:
                where = self.ab_only.keep_locally(job)
                log.error("the server refused the result of job %s (%s); kept it in %s", job.id, exc, where,
                          extra=job_fields(job.id, job.dataset_id, "uploading", message_id=messages.JOB_FAILED))
                parts.forget(job)
                raise JobEnded()
            raise JobFailed("the server rejected the result: %s" % exc)
        self._finished(job, result, "uploaded" if code == 201 else "already on the server")

    def report_failure(self, job: Job, reason: str) -> None:
        """Tell the server the job failed and why (kept durable until acknowledged)."""
        parts = self.parts
        job.state = parts.store.update(job.id, failure=reason)
        log.error("job %s failed: %s", job.id, reason,
                  extra=job_fields(job.id, job.dataset_id, "failed", message_id=messages.JOB_FAILED))
        parts.status.update(last_result="job %s… failed: %s" % (job.id[:8], reason[:120]))
        if job.local_only:
            self.ab_only.keep_locally(job)
        else:
            try:
                self._until_acknowledged(job, "reporting the failure", lambda: parts.client.fail(  # type: ignore
                    job.id, job.state.get("lease_id"), reason))
            except (AuthError, Interrupted):
                raise  # keep the job; the loop backs off and tries again (or the daemon stops)
            except ClientError as exc:  # refused, redirected: retrying would wedge the queue on this job
                log.warning("the server did not take the failure report of job %s (%s); dropping it",
                            job.id, exc, extra=job_fields(job.id, job.dataset_id))
        parts.forget(job)

    def end_unfinished(self, job: Job) -> None:
        """Canceled or lease lost: nothing to upload; tidy up and move on."""
        parts = self.parts
        if job.canceled:
            if job.cancel_source == "local" and parts.client is not None and not job.local_only:
                try:
                    parts.client.cancel(job.id)
                except ClientError as exc:
                    log.warning("could not tell the server that job %s was canceled here (%s); "
                                "reporting it as failed instead", job.id, exc)
                    self._try_fail(job, "canceled on the runner by its administrator")
        parts.forget(job)  # first, so the line below means the job's files are gone
        if job.canceled:
            log.info("job %s canceled (%s)", job.id, "by the owner" if job.cancel_source == "server"
                     else "on this runner", extra=job_fields(job.id, job.dataset_id, "canceled",
                                                             message_id=messages.JOB_CANCELED))
            parts.status.update(last_result="job %s… canceled at %s" % (job.id[:8], pct(parts.progress)))
        else:
            log.warning("job %s dropped: its lease went to another runner", job.id,
                        extra=job_fields(job.id, job.dataset_id))

    def _try_fail(self, job: Job, reason: str) -> None:
        try:
            assert self.parts.client is not None
            self.parts.client.fail(job.id, job.state.get("lease_id"), reason)
        except ClientError as exc:
            log.warning("could not report job %s as failed: %s", job.id, exc)

    def _until_acknowledged(self, job: Job, what: str, call: Callable[[], Any]) -> Any:
        """Retry ``call`` on network trouble and 5xx, pinging meanwhile; raise other errors."""
        backoff = Backoff(cap=300.0)
        while True:
            try:
                return call()
            except NotFound:
                raise
            except ClientError as exc:
                if not exc.retryable:
                    raise
                delay = backoff.next_delay()
                if backoff.failures == 1:
                    log.warning("%s for job %s failed (%s); retrying until the server acknowledges it",
                                what, job.id, exc, extra=job_fields(job.id, job.dataset_id))
                self.parts.set(st.BACKOFF, message="%s: retry in %.0f s" % (what, delay), last_error=str(exc))
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if self.parts.signals.stop:
                        raise Stopping()
                    self.lease.tick(job, "uploading")  # keep the lease while waiting
                    if job.lease_lost or job.canceled:
                        # A ping says the job is no longer running here, perhaps because our
                        # last try was stored but its answer lost: retry now, the server's
                        # answer decides (200 already stored, 409 no longer ours).
                        job.lease_lost = job.canceled = False
                        break
                    time.sleep(TICK)

    def _finished(self, job: Job, result: Dict[str, Any], how: str,
                  message_id: str = messages.JOB_FINISHED) -> None:
        params = (result.get("parameters") or {}).get("model") or {}
        log.info("job %s finished: accuracy %.2f%%, best %s C=2^%s gamma=2^%s (%s)", job.id,
                 float(result.get("accuracy") or 0.0), params.get("preprocessing"), params.get("C"),
                 params.get("gamma"), how,
                 extra=job_fields(job.id, job.dataset_id, "done", 1.0, message_id))
        self.parts.forget(job)
        self.parts.set(st.IDLE, job_id="", dataset_id="", stage="", fraction=0.0, cells_done=0, cells_total=0,
                       eta_seconds=-1, message="idle", last_result="job %s… done, accuracy %.1f%% (%s)" % (
                           job.id[:8], float(result.get("accuracy") or 0.0), how))
