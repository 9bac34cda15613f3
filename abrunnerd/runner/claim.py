"""Poll and claim: the oldest pending job this runner can take.

A job is passed over when it was trained here before (AB-only server), failed here on
the same dataset, does not fit in ``max_memory``, or another runner was faster. A job
the runner cannot take at all (malformed details or claim answer) is failed on the
server with the reason, so the queue moves on for every runner.
"""
import logging
import os
import time
from typing import Any, Dict, Optional, Set, Tuple

from abrunnerd import atomic, messages
from abrunnerd import status as st
from abrunnerd.answers import JobEntry, Lease
from abrunnerd.client import BadAnswerError, ClientError, Conflict, NotFound, RedirectError
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.abonly import AbOnly
from abrunnerd.runner.job import dataset_hash
from abrunnerd.runner.lease import LeaseKeeper
from abrunnerd.runner.parts import Parts
from abrunnerd.training_process import estimate_peak_memory

log = logging.getLogger("abrunnerd")


class Claimer:
    def __init__(self, parts: Parts, lease: LeaseKeeper, ab_only: AbOnly) -> None:
        self.parts = parts
        self.lease = lease
        self.ab_only = ab_only
        self._skipped: Dict[str, str] = {}  # job id -> why we do not take it
        self._said: Set[Tuple[str, str]] = set()  # problems with the server's answers, logged once each

    def poll_and_claim(self) -> Optional[str]:
        """Claim the oldest pending job we can take; None when there is none."""
        parts = self.parts
        client = parts.client
        assert client is not None
        parts.set(st.POLLING, message="looking for pending jobs")
        entries = client.pending_jobs()
        for problem in client.left_out:
            self._say_once("job list", "the server's job list has an entry the runner cannot use (%s); "
                           "left out" % problem)
        for entry in entries:
            job_id = entry.job_id
            if job_id in self._skipped:
                continue
            failed_hash = parts.store.local_failure_hash(job_id)
            if parts.store.has_local_result(job_id) and failed_hash is None:
                continue  # trained here before (AB-only server): the result is in results/
            bad_details = None
            try:
                details = client.job_details(job_id)
            except NotFound:
                continue
            except BadAnswerError as exc:
                bad_details, details = exc.problem, {}
            if failed_hash is not None and (bad_details is not None or dataset_hash(details) == failed_hash):
                continue  # failed here on this very dataset: tried again only when it changes
            if bad_details is None and not self._fits_in_memory(job_id, details):
                continue
            lease: Optional[Lease] = None
            local_only = self.ab_only.detected  # nothing to claim there: not asked again (abonly.py)
            try:
                if not local_only:
                    lease = client.claim(job_id, parts.runner_id, parts.cfg.runner_name, None)
            except Conflict:
                continue  # another runner was faster
            except BadAnswerError as exc:
                self._refuse(job_id, getattr(exc, "lease_id", None), "the claim answer is malformed: %s"
                             % exc.problem)
                continue
            except (NotFound, RedirectError) as exc:
                if not self.ab_only.server_is_ab_only(exc):
                    continue
                local_only = True
            if bad_details is not None:
                self._refuse(job_id, lease.lease_id if lease else None,
                             "the job details are malformed: %s" % bad_details, tell_server=not local_only)
                continue
            self._hold(entry, details, lease, local_only)
            return job_id
        return None

    def _hold(self, entry: JobEntry, details: Dict[str, Any], lease: Optional[Lease], local_only: bool) -> None:
        """Make the claimed job durable: its details first, then state.json marks it held."""
        parts = self.parts
        job_id = entry.job_id
        dataset_id = details.get("dataset_id")
        files = parts.store.files(job_id)
        os.makedirs(parts.store.checked(files.dir), mode=0o750, exist_ok=True)
        atomic.write_json(parts.store.checked(files.details), details)  # before state.json marks it held
        seed = lease.seed if lease and lease.seed is not None else details.get("seed", 42)
        parts.store.save(job_id, {
            "job_id": job_id, "dataset_id": dataset_id, "lease_id": lease.lease_id if lease else None,
            "local_only": local_only, "seed": seed,
            "features_url": lease.features_url if lease else None,
            "features_sha256": lease.features_sha256 if lease else None,
            "features_size": lease.features_size if lease else None,
            "dataset_hash": dataset_hash(details), "claimed_at": time.time(), "stage": "claimed"})
        if lease:
            self.lease.adopt(lease)
        name = entry.dataset_name or details.get("dataset", {}).get("name") or "?"
        if local_only:
            log.info("training job %s locally (dataset %s, %s): nothing is claimed on an "
                     "AcousticBrainz-only server; the result stays in %s", job_id, dataset_id, name,
                     parts.store.results_dir(job_id),
                     extra=job_fields(job_id, dataset_id, "local", 0.0, messages.JOB_LOCAL_STARTED))
        else:
            log.info("claimed job %s (dataset %s, %s)", job_id, dataset_id, name,
                     extra=job_fields(job_id, dataset_id, "claimed", 0.0, messages.JOB_CLAIMED))

    def _refuse(self, job_id: str, lease_id: Optional[str], reason: str, tell_server: bool = True) -> None:
        """A job the runner cannot take: fail it on the server with the reason when it can
        (so the owner learns why and the queue moves on for every runner), else skip it
        here; logged once either way."""
        self._skipped[job_id] = reason
        told = False
        if tell_server and self.parts.client is not None:
            try:
                self.parts.client.fail(job_id, lease_id, reason)
                told = True
            except ClientError as exc:
                log.debug("could not report job %s as failed: %s", job_id, exc)
        log.error("job %s cannot be trained: %s; %s", job_id, reason,
                  "reported it as failed" if told else "skipping it on this runner",
                  extra=job_fields(job_id, None, "failed", message_id=messages.JOB_FAILED))

    def _say_once(self, key: str, text: str) -> None:
        if (key, text) in self._said or len(self._said) > 1000:
            return
        self._said.add((key, text))
        log.warning("%s", text)

    def _fits_in_memory(self, job_id: str, details: Dict[str, Any]) -> bool:
        cfg = self.parts.cfg
        if not cfg.max_memory:
            return True
        n = sum(len(c["recordings"]) for c in details["dataset"]["classes"])
        try:
            need = estimate_peak_memory(n, details["options"], self.parts.workers(),
                                        should_stop=lambda: self.parts.signals.stop, max_memory=cfg.max_memory)
        except Exception as exc:
            log.warning("cannot estimate the memory job %s needs (%s); trying it anyway", job_id, exc)
            return True
        if need <= cfg.max_memory:
            return True
        self._skipped[job_id] = "memory"
        log.warning("skipping job %s: it needs about %.1f GiB (%d recordings, %d workers), more than "
                    "max_memory (%.1f GiB); raise max_memory or lower max_workers in %s",
                    job_id, need / 2 ** 30, n, cfg.max_workers, cfg.max_memory / 2 ** 30,
                    cfg.path, extra=job_fields(job_id, details.get("dataset_id")))
        return False
