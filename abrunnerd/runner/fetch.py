"""Fetch a claimed job's features: the server's bundle (resumable, size and SHA-256
checked), or on an AB-only server the low-level documents (``abonly.py``)."""
import logging
import os

from abrunnerd import status as st
from abrunnerd.client import BadAnswerError, IntegrityError
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.abonly import AbOnly
from abrunnerd.runner.job import Job, JobDropped, JobFailed
from abrunnerd.runner.lease import LeaseKeeper
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.signals import Stopping

log = logging.getLogger("abrunnerd")

MAX_INTEGRITY_FAILURES = 5  # wrong or unusable bundles in a row before the job is reported failed


class Fetcher:
    def __init__(self, parts: Parts, lease: LeaseKeeper, ab_only: AbOnly) -> None:
        self.parts = parts
        self.lease = lease
        self.ab_only = ab_only

    def fetch(self, job: Job) -> None:
        parts = self.parts
        files = job.files
        if job.local_only:
            if not os.path.exists(os.path.join(files.abdata, "dataset.json")):
                self.ab_only.fetch_lowlevel(job)
            return
        if os.path.exists(files.features):
            return
        assert parts.client is not None
        parts.set(st.DOWNLOADING, stage="downloading", message="downloading features")
        parts.stage(job, "downloading")

        def on_chunk(done: int) -> None:
            size = job.state.get("features_size") or 0
            self.lease.tick(job, "downloading", fraction=(done / size) if size else 0.0)
            if parts.signals.stop:
                raise Stopping()
            if job.canceled or job.lease_lost:  # a ping said so: the download is abandoned
                raise JobDropped()

        url = job.state.get("features_url") or "datasets/evaluation/jobs/%s/features" % job.id
        try:
            parts.client.download(url, files.features, job.state.get("features_sha256"),
                                  job.state.get("features_size"), on_chunk=on_chunk)
        except (IntegrityError, BadAnswerError) as exc:  # a wrong or unusable bundle: a few tries, then failed
            failures = int(job.state.get("integrity_failures", 0)) + 1
            job.state = parts.store.update(job.id, integrity_failures=failures)
            if failures >= MAX_INTEGRITY_FAILURES:
                raise JobFailed("the features download failed its check %d times: %s" % (failures, exc))
            raise
        log.info("features of job %s downloaded (%d bytes, SHA-256 verified)", job.id,
                 os.path.getsize(files.features), extra=job_fields(job.id, job.dataset_id, "downloading", 1.0))
