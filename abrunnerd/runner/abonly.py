"""Servers with only AcousticBrainz's API (decisions.md item 6): detecting one, fetching
a job's documents through ``/low-level``, and keeping results in ``work_dir/results``
(also where a full server's refused results go).

Nothing is claimed, pinged or uploaded there; the job stays pending on the server, so
``claim.py`` skips jobs that already have a result here (a failed one is tried again
when its dataset changes). Detection holds until the configuration is reloaded or the
daemon restarts: after it no claim is sent, so the server is not asked twice per job.
"""
import logging
import os
import shutil

from abrunnerd import atomic, messages
from abrunnerd import status as st
from abrunnerd.client import LOWLEVEL_BATCH, BadAnswerError, ClientError, NotFound, RedirectError
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.job import Job, JobFailed
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.signals import Stopping

log = logging.getLogger("abrunnerd")


class AbOnly:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.detected = False  # the server has only AcousticBrainz's API (said once)

    def reset(self) -> None:
        """A reloaded configuration (perhaps another server_url): ask the server again."""
        self.detected = False

    def server_is_ab_only(self, claim_error: ClientError) -> bool:
        """AcousticBrainz's real server answers unknown paths with 404, or with a 301 to
        https when run on plain HTTP behind its production config: claim and whoami both
        answering that way means a server with only AB's API (said once)."""
        cfg = self.parts.cfg
        assert self.parts.client is not None
        try:
            self.parts.client.whoami()
            if isinstance(claim_error, RedirectError):
                raise claim_error  # whoami works but claim redirects: report it, do not guess
            return False
        except (NotFound, RedirectError) as exc:
            if not self.detected:
                self.detected = True
                log.warning("%s has only AcousticBrainz's API (claim and whoami answer %s): jobs are "
                            "trained here, nothing is claimed, pinged or uploaded, and results stay in %s",
                            cfg.server_url, "HTTP %d" % getattr(exc, "status", 0),
                            os.path.join(cfg.work_dir, "results"),
                            extra={"MESSAGE_ID": messages.SERVER_AB_ONLY})
            return True

    def fetch_lowlevel(self, job: Job) -> None:
        """Documents through /low-level, 25 ids a request, into an AB-form dir."""
        parts = self.parts
        assert parts.client is not None
        details = parts.details(job)
        dataset = details["dataset"]
        mbids = [m for c in dataset["classes"] for m in c["recordings"]]  # canonical UUIDs (answers)
        lowlevel = os.path.join(job.files.abdata, "lowlevel")
        os.makedirs(parts.store.checked(lowlevel), exist_ok=True)
        parts.set(st.DOWNLOADING, stage="downloading", message="fetching low-level features")
        todo = [m for m in mbids if not os.path.exists(os.path.join(lowlevel, m + ".json"))]
        for i in range(0, len(todo), LOWLEVEL_BATCH):
            batch = todo[i:i + LOWLEVEL_BATCH]
            try:
                body = parts.client.lowlevel_bulk(batch)
            except BadAnswerError as exc:  # kept locally as failed; tried again when the dataset changes
                raise JobFailed("the low-level documents cannot be used: %s" % exc.problem)
            for mbid in batch:
                entry = body.get(mbid)
                doc = entry.get("0") if isinstance(entry, dict) else None
                if isinstance(doc, dict):
                    atomic.write_json(parts.store.checked(os.path.join(lowlevel, mbid + ".json")), doc,
                                      durable=False)
            if parts.signals.stop:
                raise Stopping()
        missing = [m for m in mbids if not os.path.exists(os.path.join(lowlevel, m + ".json"))]
        if missing:
            # AB embeds the current dataset, not the job's snapshot: a recording added later
            # may have no document. Train on the rest and say which ones were left out.
            log.warning("job %s: the server returned no low-level document for %d of %d recordings; "
                        "training without them: %s%s", job.id, len(missing), len(mbids),
                        ", ".join(missing[:10]), " …" if len(missing) > 10 else "",
                        extra=job_fields(job.id, job.dataset_id, "downloading"))
            keep = set(mbids) - set(missing)
            dataset = dict(dataset, classes=[dict(c, recordings=[m for m in c["recordings"] if m in keep])
                                             for c in dataset["classes"]])
        atomic.write_json(parts.store.checked(os.path.join(job.files.abdata, "dataset.json")), dataset)

    def keep_locally(self, job: Job) -> str:
        """Copy the job's result (or its failure) into work_dir/results/<job_id>/."""
        store = self.parts.store
        dest = store.checked(store.results_dir(job.id))
        os.makedirs(dest, exist_ok=True)
        for name in ("result.json", "model.history", "error.json", "job.json"):
            src = os.path.join(job.files.dir, name)
            if os.path.isfile(src) and not os.path.islink(src):
                shutil.copyfile(src, store.checked(os.path.join(dest, name)))
        if job.state.get("failure"):
            atomic.write_json(store.checked(os.path.join(dest, "result.json")),
                              {"failed": job.state["failure"], "dataset_hash": job.state.get("dataset_hash")})
        return dest
