"""The job's path, top to bottom: poll → claim → fetch → train → report → upload → clean up.

One job at a time. Every step is resumable from the durable state in ``work_dir``
(see ``state``): after a crash, ``kill -9`` or restart the held job is re-claimed with
its lease id and continues from the trainer's checkpoint. Training runs in a separate,
niced process (``training_process``) while this loop keeps pinging, so a saturated
machine never starves the heartbeat.

Error policy, in one place (``loop_once``): network trouble and 5xx are retried with
capped, jittered backoff and logged once per change of state; 401/403 is logged once
as "token rejected by SERVER" and backed off long; a malformed job or dataset is
reported to the server as failed with the reason, and the runner carries on.
"""
import json
import logging
import os
import shutil
import time
from typing import Any, Callable, Dict, List, Optional, Set

from abrunnerd import messages
from abrunnerd import status as st
from abrunnerd.backoff import Backoff
from abrunnerd.client import (LOWLEVEL_BATCH, ApiError, AuthError, BadAnswerError, Client, ClientError,
                              Conflict, IntegrityError, Interrupted, NotFound, RedirectError)
from abrunnerd.config import Config, ConfigError, Secret
from abrunnerd.reporting.logs import job_fields
from abrunnerd.reporting.notify import Notifier
from abrunnerd.state import JobFiles, StateStore
from abrunnerd.training_process import (DATASET_ERROR, DONE, STOPPED, TrainingProcess,
                                        estimate_peak_memory, kill_stale)

log = logging.getLogger("abrunnerd")

AUTH_BACKOFF = 900.0  # a rejected token will not fix itself soon; SIGHUP retries at once
MAX_INTEGRITY_FAILURES = 5
MAX_TRAIN_ATTEMPTS = 3  # runs of the training process per job before it is reported failed
TICK = 0.2
EX_NOPERM = 77  # --once with a rejected token
EX_CONFIG = 78


class Signals:
    """Flags set by signal handlers (and nothing else); read at safe points."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False


class Stopping(Exception):
    """Raised inside a job step when the daemon is asked to stop; the job is kept."""


class JobEnded(Exception):
    """The job ended for a reason other than success (canceled, lease lost, failed)."""


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


class Runner:
    def __init__(self, cfg: Config, token: Optional[Secret], status: st.RunnerStatus,
                 notifier: Notifier, signals: Signals, once: bool = False,
                 reload_config: Optional[Callable[[], Any]] = None) -> None:
        self.cfg = cfg
        self.token = token
        self.status = status
        self.notifier = notifier
        self.signals = signals
        self.once = once
        self.reload_config = reload_config
        self.store = StateStore(cfg.work_dir)
        self.client: Optional[Client] = self._make_client()
        self.backoff = Backoff(cap=300.0)
        self.runner_id = ""
        self.ping_interval = float(cfg.ping_interval)
        self.progress = st.ProgressTracker()  # the held job's position (status model: status.py)
        self._trouble: Optional[str] = None  # the kind of the current network trouble, logged once
        self._skipped: Dict[str, str] = {}  # job id -> why we do not take it
        self._said: Set[str] = set()  # problems with the server's answers, logged once each
        self.ab_only = False  # the server has only AcousticBrainz's API (said once)
        self._resumed: Set[str] = set()
        self._pause_wanted = False
        self.once_done = False
        self.exit_code = 0

    # -- lifecycle ------------------------------------------------------------------
    def _make_client(self) -> Optional[Client]:
        if self.token is None:
            return None
        return Client(self.cfg.server_url, self.token, timeout=self.cfg.request_timeout,
                      verify=self.cfg.tls_verify(), max_download_size=self.cfg.max_download_size,
                      should_stop=lambda: self.signals.stop)

    def start(self) -> None:
        self.store.ensure_dirs()
        self.runner_id = self.store.runner_id()
        self.status.update(server_url=self.cfg.server_url, runner_name=self.cfg.runner_name)
        if self.token is None:
            self._no_token()
        else:
            self._set(st.IDLE, message="starting")
        self.notifier.ready(st.summary(self.status.snapshot()))

    def run(self) -> int:
        """The main loop: until stopped (or, with --once, until one job is done)."""
        try:
            self.start()
        except OSError as exc:  # an unusable work_dir is a configuration problem: exit 78, not a crash
            log.error("work_dir %s cannot be used (%s%s): create it writable for the daemon's user and "
                      "restart", self.cfg.work_dir, exc.strerror or exc,
                      ": " + exc.filename if isinstance(exc.filename, str) else "")
            return EX_CONFIG
        while not self.signals.stop:
            wait = self.loop_once()
            if self.once and self.once_done:
                break
            self.sleep(wait)
        self._set(st.STOPPED, message="stopped")
        self.notifier.stopping(st.summary(self.status.snapshot()))
        if self.client:
            self.client.close()
        return self.exit_code

    def sleep(self, seconds: float) -> None:
        """Sleep in small steps, waking early for a signal; keep the watchdog fed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (self.signals.stop or self.signals.reload):
            self.notifier.watchdog()
            self.status.take_requests()  # no job: pause/resume/cancel have nothing to act on
            time.sleep(min(TICK * 2.5, max(0.0, deadline - time.monotonic())))

    def handle_reload(self) -> None:
        if not self.signals.reload:
            return
        self.signals.reload = False
        if self.reload_config is None:
            return
        self.notifier.reloading()
        try:
            cfg, token = self.reload_config()
        except Exception as exc:  # keep running on the old config; say what is wrong
            from abrunnerd.exitcodes import config_problem
            reason = config_problem(exc, "abrunnerd")[0] if isinstance(exc, ConfigError) else str(exc)
            if reason.startswith("configuration error in "):  # the status line says "configuration refused"
                reason = reason[len("configuration error in "):]
            log.error("configuration not reloaded, keeping the previous one%s: %s",
                      " (still without a token)" if self.token is None else "", reason)
            self._set(self.status.snapshot().get("state", st.IDLE), config_error=reason)
        else:
            self.cfg, self.token = cfg, token
            if self.client:
                self.client.close()
            self.client = self._make_client()
            self.ping_interval = float(cfg.ping_interval)
            self.backoff.reset()
            self._trouble = None
            log.info("configuration reloaded from %s", cfg.path)
            self.status.update(config_error="")
            if token is None:
                self._no_token()
            elif self.status.snapshot().get("state") == st.NO_TOKEN:
                self._set(st.IDLE, message="token read; looking for jobs", next_poll=0)
        self.notifier.ready(st.summary(self.status.snapshot()))

    # -- one turn of the loop: the error funnel --------------------------------------------
    def loop_once(self) -> float:
        """Do the next piece of work; return how long to wait before the next turn."""
        self.handle_reload()
        if self.client is None:
            if self.once:
                self.once_done = True
            return self.cfg.poll_interval
        try:
            held = self.store.held_jobs()
            if held:
                if not self.process_job(held[0], resumed=True):
                    return self._after_unfinished()
            else:
                job_id = self.poll_and_claim()
                if job_id is None:
                    self._recovered()
                    self._set(st.IDLE, job_id="", dataset_id="", stage="", fraction=0.0, cells_done=0,
                              cells_total=0, eta_seconds=-1, message="idle: no pending jobs",
                              next_poll=int(time.time() + self.cfg.poll_interval))
                    if self.once:
                        self.once_done = True
                    return self.cfg.poll_interval
                if not self.process_job(job_id, resumed=False):
                    return self._after_unfinished()
            self._recovered()
            if self.once:
                self.once_done = True
            return 0.0
        except (Stopping, Interrupted):
            return 0.0
        except AuthError as exc:
            if self._trouble != "auth":
                self._trouble = "auth"
                log.error("token rejected by %s (HTTP %d): put a valid token into %s and run "
                          "'systemctl reload abrunnerd'; retrying in %d min",
                          self.cfg.server_url, exc.status, self.cfg.token_file, AUTH_BACKOFF // 60,
                          extra={"MESSAGE_ID": messages.TOKEN_REJECTED})
            self._set(st.BACKOFF, message="token rejected by " + self.cfg.server_url,
                      last_error="token rejected by " + self.cfg.server_url)
            if self.once:  # cron/debugging: waiting a quarter of an hour helps nobody
                self.once_done, self.exit_code = True, EX_NOPERM
            return AUTH_BACKOFF
        except ClientError as exc:
            return self._retry_later(exc)
        except OSError as exc:  # local trouble (ENOSPC, permissions): keep the job, say where, retry
            import errno
            what = "is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot be written"
            return self._retry_later(OSError(exc.errno, "work_dir %s %s (%s: %s)"
                                             % (self.cfg.work_dir, what, exc.strerror, exc.filename)))
        except Exception as exc:  # a bug or the host (disk full…): say so, keep the job, retry later
            log.exception("unexpected error, retrying with backoff: %s", exc)
            return self._retry_later(exc)

    def _after_unfinished(self) -> float:
        """A job ended canceled, refused or failed: back off like after any failure
        (decisions 7e), so a server that cancels or refuses everything is not hammered."""
        if self.once:
            self.once_done = True
        return self.backoff.next_delay()

    def _retry_later(self, exc: Exception) -> float:
        delay = self.backoff.next_delay()
        if getattr(exc, "retry_after", None):  # 429/503 with Retry-After or X-RateLimit-Reset-In
            delay = max(delay, float(exc.retry_after))  # type: ignore[attr-defined]
        kind = "%s:%s" % (type(exc).__name__, getattr(exc, "status", ""))
        if self._trouble != kind:
            self._trouble = kind
            log.warning("%s; retrying with backoff (at most every %d s until it works)", exc, self.backoff.cap)
        else:
            log.debug("still failing the same way; next try in %.0f s", delay)
        self._set(st.BACKOFF, message="%s (retry in %.0f s)" % (exc, delay), last_error=str(exc))
        return delay

    def _recovered(self) -> None:
        if self._trouble is not None:
            log.info("%s answers again", self.cfg.server_url)
            self._trouble = None
        self.backoff.reset()

    # -- poll and claim -------------------------------------------------------------------
    def poll_and_claim(self) -> Optional[str]:
        """Claim the oldest pending job we can take; None when there is none."""
        assert self.client is not None
        self._set(st.POLLING, message="looking for pending jobs")
        entries = self.client.pending_jobs()
        for problem in self.client.left_out:
            self._say_once("job list", "the server's job list has an entry the runner cannot use (%s); "
                           "left out" % problem)
        for entry in entries:
            job_id = entry.job_id
            if job_id in self._skipped:
                continue
            failed_hash = self.store.local_failure_hash(job_id)
            if self.store.has_local_result(job_id) and failed_hash is None:
                continue  # trained here before (AB-only server): the result is in results/
            bad_details = None
            try:
                details = self.client.job_details(job_id)
            except NotFound:
                continue
            except BadAnswerError as exc:
                bad_details, details = exc.problem, {}
            if failed_hash is not None and (bad_details is not None or _dataset_hash(details) == failed_hash):
                continue  # failed here on this very dataset: tried again only when it changes
            if bad_details is None and not self._fits_in_memory(job_id, details):
                continue
            try:
                lease = self.client.claim(job_id, self.runner_id, self.cfg.runner_name, None)
                local_only = False
            except Conflict:
                continue  # another runner was faster
            except BadAnswerError as exc:
                self._refuse(job_id, getattr(exc, "lease_id", None), "the claim answer is malformed: %s"
                             % exc.problem)
                continue
            except (NotFound, RedirectError) as exc:
                if not self._server_is_ab_only(exc):
                    continue
                lease, local_only = None, True
            if bad_details is not None:
                self._refuse(job_id, lease.lease_id if lease else None,
                             "the job details are malformed: %s" % bad_details, tell_server=not local_only)
                continue
            dataset_id = details.get("dataset_id")
            from abrunnerd import atomic
            files = self.store.files(job_id)
            os.makedirs(self.store.checked(files.dir), mode=0o750, exist_ok=True)
            atomic.write_json(self.store.checked(files.details), details)  # before state.json marks it held
            seed = lease.seed if lease and lease.seed is not None else details.get("seed", 42)
            self.store.save(job_id, {
                "job_id": job_id, "dataset_id": dataset_id, "lease_id": lease.lease_id if lease else None,
                "local_only": local_only, "seed": seed,
                "features_url": lease.features_url if lease else None,
                "features_sha256": lease.features_sha256 if lease else None,
                "features_size": lease.features_size if lease else None,
                "dataset_hash": _dataset_hash(details), "claimed_at": time.time(), "stage": "claimed"})
            if lease:
                self.ping_interval = st.effective_ping_interval(self.cfg.ping_interval, lease.ping_interval)
            name = entry.dataset_name or details.get("dataset", {}).get("name") or "?"
            if local_only:
                log.info("training job %s locally (dataset %s, %s): nothing is claimed on an "
                         "AcousticBrainz-only server; the result stays in %s", job_id, dataset_id, name,
                         self.store.results_dir(job_id),
                         extra=job_fields(job_id, dataset_id, "local", 0.0, messages.JOB_LOCAL_STARTED))
            else:
                log.info("claimed job %s (dataset %s, %s)", job_id, dataset_id, name,
                         extra=job_fields(job_id, dataset_id, "claimed", 0.0, messages.JOB_CLAIMED))
            return job_id
        return None

    def _refuse(self, job_id: str, lease_id: Optional[str], reason: str, tell_server: bool = True) -> None:
        """A job the runner cannot take: fail it on the server with the reason when it can
        (so the owner learns why and the queue moves on for every runner), else skip it
        here; logged once either way."""
        self._skipped[job_id] = reason
        told = False
        if tell_server and self.client is not None:
            try:
                self.client.fail(job_id, lease_id, reason)
                told = True
            except ClientError as exc:
                log.debug("could not report job %s as failed: %s", job_id, exc)
        log.error("job %s cannot be trained: %s; %s", job_id, reason,
                  "reported it as failed" if told else "skipping it on this runner",
                  extra=job_fields(job_id, None, "failed", message_id=messages.JOB_FAILED))

    def _say_once(self, key: str, text: str) -> None:
        if (key, text) in self._said or len(self._said) > 1000:
            return
        self._said.add((key, text))  # type: ignore[arg-type]
        log.warning("%s", text)

    def _server_is_ab_only(self, claim_error: ClientError) -> bool:
        """AcousticBrainz's real server answers unknown paths with 404, or with a 301 to
        https when run on plain HTTP behind its production config: claim and whoami both
        answering that way means a server with only AB's API (said once)."""
        assert self.client is not None
        try:
            self.client.whoami()
            if isinstance(claim_error, RedirectError):
                raise claim_error  # whoami works but claim redirects: report it, do not guess
            return False
        except (NotFound, RedirectError) as exc:
            if not self.ab_only:
                self.ab_only = True
                log.warning("%s has only AcousticBrainz's API (claim and whoami answer %s): jobs are "
                            "trained here, nothing is claimed, pinged or uploaded, and results stay in %s",
                            self.cfg.server_url, "HTTP %d" % getattr(exc, "status", 0),
                            os.path.join(self.cfg.work_dir, "results"),
                            extra={"MESSAGE_ID": messages.SERVER_AB_ONLY})
            return True

    def _fits_in_memory(self, job_id: str, details: Dict[str, Any]) -> bool:
        if not self.cfg.max_memory:
            return True
        n = sum(len(c["recordings"]) for c in details["dataset"]["classes"])
        try:
            need = estimate_peak_memory(n, details["options"], self.workers(),
                                        should_stop=lambda: self.signals.stop, max_memory=self.cfg.max_memory)
        except Exception as exc:
            log.warning("cannot estimate the memory job %s needs (%s); trying it anyway", job_id, exc)
            return True
        if need <= self.cfg.max_memory:
            return True
        self._skipped[job_id] = "memory"
        log.warning("skipping job %s: it needs about %.1f GiB (%d recordings, %d workers), more than "
                    "max_memory (%.1f GiB); raise max_memory or lower max_workers in %s",
                    job_id, need / 2 ** 30, n, self.cfg.max_workers, self.cfg.max_memory / 2 ** 30,
                    self.cfg.path, extra=job_fields(job_id, details.get("dataset_id")))
        return False

    def workers(self) -> int:
        """Training processes: max_workers, but never more than the CPUs (the trainer
        further caps them at the cells left to do)."""
        return max(1, min(self.cfg.max_workers, os.cpu_count() or 1))

    # -- one job, start to end --------------------------------------------------------------
    def process_job(self, job_id: str, resumed: bool) -> bool:
        """True when the job was done (uploaded or kept); False when it ended otherwise."""
        files = self.store.files(job_id)
        if resumed:
            try:
                state = self.store.load_checked(job_id)
            except (OSError, ValueError) as exc:
                self.store.quarantine(job_id, str(exc))
                return False
        else:
            state = self.store.load(job_id) or {"job_id": job_id}
        job = Job(job_id, files, state)
        # A resumed job shows the position it last showed (shown.json), never 0/0.
        self.progress = st.ProgressTracker.from_saved(_read_shown(files.dir))
        self._set(st.RESUMING if resumed else st.CLAIMED, job_id=job_id, dataset_id=job.dataset_id or "",
                  stage=job.state.get("stage", "claimed") if resumed else "claimed", message="",
                  next_poll=0, **self.progress.fields())
        try:
            if resumed:
                self.resume_lease(job)
            if job.state.get("failure"):
                self.report_failure(job, job.state["failure"])
            if not os.path.exists(files.result):
                self.fetch_features(job)
                self.train(job)
            self.upload(job)
            return True
        except JobEnded:
            return False

    def resume_lease(self, job: Job) -> None:
        kill_stale(job.state.get("worker_pgid"))
        if job.id not in self._resumed:  # once, not on every retry after a network error
            self._resumed.add(job.id)
            where = st.position(self.status.snapshot())
            log.info("resuming job %s from %s%s", job.id, job.state.get("stage", "claimed"),
                     " at " + where if where else "",
                     extra=job_fields(job.id, job.dataset_id, job.state.get("stage"), self.progress.fraction))
        if job.local_only or os.path.exists(job.files.result) or job.state.get("failure"):
            return  # the upload (or fail report) itself checks the lease
        assert self.client is not None
        try:
            lease = self.client.claim(job.id, self.runner_id, self.cfg.runner_name, job.state.get("lease_id"))
        except (Conflict, NotFound) as exc:
            log.warning("job %s is no longer ours (%s); dropping its local state", job.id, exc,
                        extra=job_fields(job.id, job.dataset_id))
            self.forget(job)
            raise JobEnded()
        except BadAnswerError as exc:
            self.report_failure(job, "the claim answer is malformed: %s" % exc.problem)
        job.state = self.store.update(job.id, lease_id=lease.lease_id or job.state.get("lease_id"),
                                      features_url=lease.features_url or job.state.get("features_url"),
                                      features_sha256=lease.features_sha256 or job.state.get("features_sha256"),
                                      features_size=lease.features_size or job.state.get("features_size"))
        self.ping_interval = st.effective_ping_interval(self.cfg.ping_interval, lease.ping_interval)

    def fetch_features(self, job: Job) -> None:
        files = job.files
        if job.local_only:
            if not os.path.exists(os.path.join(files.abdata, "dataset.json")):
                self.fetch_lowlevel(job)
            return
        if os.path.exists(files.features):
            return
        assert self.client is not None
        self._set(st.DOWNLOADING, stage="downloading", message="downloading features")
        self._stage(job, "downloading")

        def on_chunk(done: int) -> None:
            size = job.state.get("features_size") or 0
            self.tick(job, "downloading", fraction=(done / size) if size else 0.0)
            if self.signals.stop:
                raise Stopping()
            if job.canceled or job.lease_lost:  # a ping said so: the download is abandoned
                self.end_unfinished(job)

        url = job.state.get("features_url") or "datasets/evaluation/jobs/%s/features" % job.id
        try:
            self.client.download(url, files.features, job.state.get("features_sha256"),
                                 job.state.get("features_size"), on_chunk=on_chunk)
        except (IntegrityError, BadAnswerError) as exc:  # a wrong or unusable bundle: a few tries, then failed
            failures = int(job.state.get("integrity_failures", 0)) + 1
            job.state = self.store.update(job.id, integrity_failures=failures)
            if failures >= MAX_INTEGRITY_FAILURES:
                self.report_failure(job, "the features download failed its check %d times: %s" % (failures, exc))
            raise
        log.info("features of job %s downloaded (%d bytes, SHA-256 verified)", job.id,
                 os.path.getsize(files.features), extra=job_fields(job.id, job.dataset_id, "downloading", 1.0))

    def fetch_lowlevel(self, job: Job) -> None:
        """AB-only servers: documents through /low-level, 25 ids a request, into an AB-form dir."""
        from abrunnerd import atomic

        assert self.client is not None
        details = self._details(job)
        dataset = details["dataset"]
        mbids = [m for c in dataset["classes"] for m in c["recordings"]]  # canonical UUIDs (answers)
        lowlevel = os.path.join(job.files.abdata, "lowlevel")
        os.makedirs(self.store.checked(lowlevel), exist_ok=True)
        self._set(st.DOWNLOADING, stage="downloading", message="fetching low-level features")
        todo = [m for m in mbids if not os.path.exists(os.path.join(lowlevel, m + ".json"))]
        for i in range(0, len(todo), LOWLEVEL_BATCH):
            batch = todo[i:i + LOWLEVEL_BATCH]
            try:
                body = self.client.lowlevel_bulk(batch)
            except BadAnswerError as exc:  # kept locally as failed; tried again when the dataset changes
                self.report_failure(job, "the low-level documents cannot be used: %s" % exc.problem)
            for mbid in batch:
                entry = body.get(mbid)
                doc = entry.get("0") if isinstance(entry, dict) else None
                if isinstance(doc, dict):
                    atomic.write_json(self.store.checked(os.path.join(lowlevel, mbid + ".json")), doc,
                                      durable=False)
            if self.signals.stop:
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
        atomic.write_json(self.store.checked(os.path.join(job.files.abdata, "dataset.json")), dataset)

    def _details(self, job: Job) -> Dict[str, Any]:
        """The job details saved at claim time (fetched again if that file is gone)."""
        from abrunnerd import atomic

        from abrunnerd.answers import BadAnswer, parse_details

        try:
            return parse_details(job.id, atomic.read_json(job.files.details))
        except (OSError, ValueError, RecursionError):  # gone or corrupted: ask again (checked there)
            assert self.client is not None
            try:
                details = self.client.job_details(job.id)
            except BadAnswerError as exc:
                self.report_failure(job, "the job details are malformed: %s" % exc.problem)
            atomic.write_json(self.store.checked(job.files.details), details)
            return details

    def train(self, job: Job) -> None:
        """Run the training process to its end, pinging and obeying controls meanwhile."""
        from abrunnerd import atomic

        files = job.files
        details = self._details(job)
        atomic.write_json(self.store.checked(files.spec), {
            "job_id": job.id, "runner_name": self.cfg.runner_name, "seed": job.state.get("seed", 42),
            "options": details["options"], "max_workers": self.workers(), "max_memory": self.cfg.max_memory,
            "source": "abdata" if job.local_only else "bundle", "dataset": details["dataset"]})
        while True:
            rc = self._run_training(job)
            if rc == DONE and os.path.exists(files.result):
                log.info("training of job %s finished", job.id,
                         extra=job_fields(job.id, job.dataset_id, "training", 1.0))
                return
            if rc == STOPPED:
                raise Stopping()  # someone else sent the worker SIGTERM: treat like a stop, keep the job
            error = _read_error(files.error) or _last_line(files.worker_log)
            if rc == DATASET_ERROR:
                self.report_failure(job, error or "the dataset could not be used")
            # A crash or a kill (the OOM killer, an administrator): the checkpoint holds every
            # finished cell, so start again from there, a few times, before giving up.
            attempts = int(job.state.get("train_attempts", 0)) + 1
            job.state = self.store.update(job.id, train_attempts=attempts)
            how = "killed by signal %d" % -rc if rc < 0 else "exit status %d" % rc
            reason = "training process failed (%s)%s" % (how, ": " + error if error else "")
            if attempts >= MAX_TRAIN_ATTEMPTS:
                self.report_failure(job, "%s, %d times in a row" % (reason, attempts))
            log.warning("job %s: %s; restarting it from the checkpoint (attempt %d of %d)", job.id, reason,
                        attempts + 1, MAX_TRAIN_ATTEMPTS, extra=job_fields(job.id, job.dataset_id, "training"))

    def _run_training(self, job: Job) -> int:
        """One run of the training process; returns its exit status."""
        files = job.files
        for leftover in (files.error, files.progress):
            if os.path.exists(leftover):
                os.unlink(leftover)
        proc = TrainingProcess(files.dir, self.cfg.nice, files.worker_log)
        pgid = proc.start()
        job.state = self.store.update(job.id, stage="training", worker_pgid=pgid)
        self.progress.restart()
        if self._pause_wanted:
            proc.pause()
            self.progress.pause()
        # The training figures (or the checkpoint's position) replace the download's fraction.
        self._set(st.PAUSED if proc.paused else st.TRAINING, stage="paused" if proc.paused else "training",
                  message="training", **self.progress.fields())
        # The trainer itself decides whether worker processes pay off (small grids run in-process).
        log.info("training job %s (process %d, at most %d worker processes, nice %d)", job.id, pgid,
                 self.workers(), self.cfg.nice, extra=job_fields(job.id, job.dataset_id, "training", 0.0))
        last_logged = -1
        while True:
            rc = proc.poll()
            p = proc.progress()
            if isinstance(p, dict):  # the training process's file: checked like any input
                total = _count(p.get("cells_total"))
                done = min(_count(p.get("cells_done")), total)
                before = (self.progress.done, self.progress.total)
                self.progress.observe(done, total)
                if (self.progress.done, self.progress.total) != before:
                    self._save_progress(job)  # saved before shown: a restart never shows less
                fields = self.progress.fields()
                if fields["eta_seconds"] < 0:
                    fields["eta_seconds"] = _count(p.get("eta_seconds"), -1)  # the worker's own until we have a rate
                self.status.update(message=str(p.get("message") or "")[:500], **fields)
                decile = (10 * self.progress.done // self.progress.total) if self.progress.total else -1
                if decile > last_logged and self.progress.total:
                    last_logged = decile
                    log.info("%s", st.journal_progress(self.status.snapshot()),
                             extra=job_fields(job.id, job.dataset_id, "training", self.progress.fraction))
            if rc is not None:
                break
            for request in self.status.take_requests():
                self._control(job, proc, request)
            if self.signals.stop:
                self._set(st.STOPPING)
                self.notifier.stopping(st.summary(self.status.snapshot()))
                proc.stop()
                self._save_progress(job)
                where = st.position(self.status.snapshot())
                log.info("stopping: job %s keeps its checkpoint%s and resumes on the next start", job.id,
                         " at " + where if where else "",
                         extra=job_fields(job.id, job.dataset_id, "training", self.progress.fraction))
                raise Stopping()
            if job.canceled or job.lease_lost:
                proc.stop()
                self.end_unfinished(job)
            self.tick(job, "paused" if proc.paused else "training")
            time.sleep(TICK)
        job.state = self.store.update(job.id, worker_pgid=None)
        proc.stop(grace=0.5)  # reap what is left of its group (pool processes)
        return rc

    def _control(self, job: Job, proc: TrainingProcess, request: str) -> None:
        if request == "pause" and not proc.paused:
            proc.pause()
            self.progress.pause()
            self._pause_wanted = True
            self._set(st.PAUSED, stage="paused", message="paused")
            log.info("job %s paused at %s", job.id, st.journal_progress(self.status.snapshot()),
                     extra=job_fields(job.id, job.dataset_id, "paused", self.progress.fraction))
            job.next_ping = 0.0
        elif request == "resume" and proc.paused:
            proc.resume()
            self.progress.resume()
            self._pause_wanted = False
            self._set(st.TRAINING, stage="training", message="training")
            log.info("job %s resumed at %s", job.id, st.journal_progress(self.status.snapshot()),
                     extra=job_fields(job.id, job.dataset_id, "training", self.progress.fraction))
            job.next_ping = 0.0
        elif request == "cancel":
            job.canceled, job.cancel_source = True, "local"

    # -- status pings -------------------------------------------------------------------------
    def tick(self, job: Job, stage: str, fraction: Optional[float] = None) -> None:
        """Called often while a job runs: ping when due, feed the watchdog, update STATUS."""
        if fraction is not None:
            self.status.update(fraction=fraction)
        self.notifier.watchdog()
        self.notifier.status(st.summary(self.status.snapshot()))
        if job.local_only or time.monotonic() < job.next_ping:
            return
        job.next_ping = time.monotonic() + self.ping_interval
        self.ping(job, stage)

    def ping(self, job: Job, stage: str) -> None:
        """Best effort: a failed ping is a warning (once), never a failed job."""
        assert self.client is not None
        snap = self.status.snapshot()
        eta = snap.get("eta_seconds")
        body = {"lease_id": job.state.get("lease_id"), "runner_name": self.cfg.runner_name, "stage": stage,
                "fraction": round(float(snap.get("fraction") or 0.0), 4),
                "eta_seconds": eta if isinstance(eta, int) and eta >= 0 else None,
                "message": str(snap.get("message") or "")[:500],
                "cells_done": int(snap.get("cells_done") or 0), "cells_total": int(snap.get("cells_total") or 0)}
        try:
            answer = self.client.ping(job.id, body)
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
            if self._trouble != "ping":
                self._trouble = "ping"
                log.warning("status ping failed (%s); training goes on, retrying every %.0f s",
                            exc, self.ping_interval, extra=job_fields(job.id, job.dataset_id, stage))
            return
        if self._trouble == "ping":
            log.info("status pings reach %s again", self.cfg.server_url)
            self._trouble = None
        if answer.ping_interval:
            self.ping_interval = st.effective_ping_interval(self.cfg.ping_interval, answer.ping_interval)
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

    # -- ends of a job ------------------------------------------------------------------------
    def end_unfinished(self, job: Job) -> None:
        """Canceled or lease lost: nothing to upload; tidy up and move on."""
        if job.canceled:
            if job.cancel_source == "local" and self.client is not None and not job.local_only:
                try:
                    self.client.cancel(job.id)
                except ClientError as exc:
                    log.warning("could not tell the server that job %s was canceled here (%s); "
                                "reporting it as failed instead", job.id, exc)
                    self._try_fail(job, "canceled on the runner by its administrator")
        self.forget(job)  # first, so the line below means the job's files are gone
        if job.canceled:
            log.info("job %s canceled (%s)", job.id, "by the owner" if job.cancel_source == "server"
                     else "on this runner", extra=job_fields(job.id, job.dataset_id, "canceled",
                                                             message_id=messages.JOB_CANCELED))
            self.status.update(last_result="job %s… canceled at %s" % (job.id[:8], _pct(self.progress)))
        else:
            log.warning("job %s dropped: its lease went to another runner", job.id,
                        extra=job_fields(job.id, job.dataset_id))
        raise JobEnded()

    def report_failure(self, job: Job, reason: str) -> None:
        """Tell the server the job failed and why (kept durable until acknowledged)."""
        job.state = self.store.update(job.id, failure=reason)
        log.error("job %s failed: %s", job.id, reason,
                  extra=job_fields(job.id, job.dataset_id, "failed", message_id=messages.JOB_FAILED))
        self.status.update(last_result="job %s… failed: %s" % (job.id[:8], reason[:120]))
        if job.local_only:
            self._keep_locally(job)
        else:
            try:
                self._until_acknowledged(job, "reporting the failure", lambda: self.client.fail(  # type: ignore
                    job.id, job.state.get("lease_id"), reason))
            except (AuthError, Interrupted):
                raise  # keep the job; the loop backs off and tries again (or the daemon stops)
            except ClientError as exc:  # refused, redirected: retrying would wedge the queue on this job
                log.warning("the server did not take the failure report of job %s (%s); dropping it",
                            job.id, exc, extra=job_fields(job.id, job.dataset_id))
        self.forget(job)
        raise JobEnded()

    def _try_fail(self, job: Job, reason: str) -> None:
        try:
            assert self.client is not None
            self.client.fail(job.id, job.state.get("lease_id"), reason)
        except ClientError as exc:
            log.warning("could not report job %s as failed: %s", job.id, exc)

    def upload(self, job: Job) -> None:
        """Upload result + model until the server acknowledges it (the PUT is idempotent)."""
        files = job.files
        with open(files.result, "rb") as f:
            result = json.loads(f.read().decode("utf-8"))
        if job.local_only:
            self._keep_locally(job)
            self._finished(job, result, "kept in " + self.store.results_dir(job.id), messages.JOB_LOCAL_FINISHED)
            return
        with open(files.model, "rb") as f:
            model = f.read()
        self._set(st.UPLOADING, stage="uploading", fraction=1.0, message="uploading the result")
        self._stage(job, "uploading")
        assert self.client is not None
        try:
            code = self._until_acknowledged(job, "uploading the result", lambda: self.client.upload_result(  # type: ignore
                job.id, job.state.get("lease_id"), result, model))
        except AuthError:
            raise
        except ApiError as exc:
            if exc.status == 409 and exc.code in ("lease_lost", "job_canceled"):
                where = self._keep_locally(job)
                log.warning("job %s dropped: %s (its result is kept in %s)", job.id,
                            "its lease went to another runner" if exc.code == "lease_lost" else "canceled by the owner",
                            where, extra=job_fields(job.id, job.dataset_id, "uploading"))
                self.forget(job)
                raise JobEnded()
            if exc.status == 409 or exc.retryable:
                where = self._keep_locally(job)
                log.error("the server refused the result of job %s (%s); kept it in %s", job.id, exc, where,
                          extra=job_fields(job.id, job.dataset_id, "uploading", message_id=messages.JOB_FAILED))
                self.forget(job)
                raise JobEnded()
            self.report_failure(job, "the server rejected the result: %s" % exc)
            return
        self._finished(job, result, "uploaded" if code == 201 else "already on the server")

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
                self._set(st.BACKOFF, message="%s: retry in %.0f s" % (what, delay), last_error=str(exc))
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if self.signals.stop:
                        raise Stopping()
                    self.tick(job, "uploading")  # keep the lease while waiting
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
        self.forget(job)
        self._set(st.IDLE, job_id="", dataset_id="", stage="", fraction=0.0, cells_done=0, cells_total=0,
                  eta_seconds=-1, message="idle", last_result="job %s… done, accuracy %.1f%% (%s)" % (
                      job.id[:8], float(result.get("accuracy") or 0.0), how))

    def _keep_locally(self, job: Job) -> str:
        dest = self.store.checked(self.store.results_dir(job.id))
        os.makedirs(dest, exist_ok=True)
        for name in ("result.json", "model.history", "error.json", "job.json"):
            src = os.path.join(job.files.dir, name)
            if os.path.isfile(src) and not os.path.islink(src):
                shutil.copyfile(src, self.store.checked(os.path.join(dest, name)))
        if job.state.get("failure"):
            from abrunnerd import atomic
            atomic.write_json(self.store.checked(os.path.join(dest, "result.json")),
                              {"failed": job.state["failure"], "dataset_hash": job.state.get("dataset_hash")})
        return dest

    def forget(self, job: Job) -> None:
        self.store.forget(job.id)
        self._pause_wanted = False

    # -- status helpers ---------------------------------------------------------------------
    def _save_progress(self, job: Job) -> None:
        """Keep the shown position and the rate next to the job's state: a restart (even
        after kill -9) shows them at once. Not fsynced: written up to 5 times a second, and
        after a power loss the trainer's own checkpoint position is as good."""
        if self.progress.total:
            from abrunnerd import atomic
            atomic.write_json(os.path.join(job.files.dir, SHOWN_FILE), self.progress.saved(), durable=False)

    def _stage(self, job: Job, stage: str) -> None:
        job.state = self.store.update(job.id, stage=stage)
        job.next_ping = 0.0

    def _set(self, state: str, **fields: Any) -> None:
        self.status.update(state=state, **fields)
        self.notifier.status(st.summary(self.status.snapshot()))

    def _no_token(self) -> None:
        text = ("no token: put the token into %s (chown root:abrunner, chmod 0640) and run "
                "'systemctl reload abrunnerd'" % self.cfg.token_file)
        if st.is_example_url(self.cfg.server_url):
            text += "; server_url in %s is still the shipped example (%s): set your job server's URL" % (
                self.cfg.path, self.cfg.server_url)
        log.warning(text, extra={"MESSAGE_ID": messages.TOKEN_MISSING})
        self._set(st.NO_TOKEN, message=text)


SHOWN_FILE = "shown.json"  # in the job directory: the position every surface last showed


def _read_shown(job_dir: str) -> Any:
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


def _pct(progress: st.ProgressTracker) -> str:
    return "%.0f%%" % (100 * progress.fraction) if progress.total else "the start"


def _count(value: Any, default: int = 0) -> int:
    """A non-negative whole number from a progress file, or ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2 ** 53:
        return default
    return int(value)


def _dataset_hash(details: Dict[str, Any]) -> str:
    """A fingerprint of what a job trains (classes and recordings): a failed local job is
    tried again when its dataset changes (AB-only servers keep the job pending)."""
    import hashlib

    data = json.dumps([details.get("dataset", {}).get("classes"), details.get("options")], sort_keys=True)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _last_line(path: str) -> str:
    """The last line of the training process's log (the exception, when it crashed)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
        return lines[-1].strip()[:500] if lines else ""
    except OSError:
        return ""


def _read_error(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return str(json.loads(f.read().decode("utf-8")).get("message") or "")
    except (OSError, ValueError, AttributeError):
        return ""


__all__: List[str] = ["Runner", "Signals"]
