"""Train a fetched job: run the training process (``training_process.py``) to its end
while the loop pings, shows progress and obeys pause, resume, cancel and stop.

A crash or a kill of the training process (the OOM killer, an administrator) restarts
it from its checkpoint, a few times, before the job is reported failed.
"""
import json
import logging
import os
import time
from typing import Any

from abrunnerd import atomic
from abrunnerd import status as st
from abrunnerd.reporting.logs import job_fields
from abrunnerd.runner.job import SHOWN_FILE, Job, JobDropped, JobFailed
from abrunnerd.runner.lease import LeaseKeeper
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.signals import TICK, Stopping
from abrunnerd.training_process import DATASET_ERROR, DONE, STOPPED, TrainingProcess

log = logging.getLogger("abrunnerd")

MAX_TRAIN_ATTEMPTS = 3  # runs of the training process per job before it is reported failed


class Training:
    def __init__(self, parts: Parts, lease: LeaseKeeper) -> None:
        self.parts = parts
        self.lease = lease

    def train(self, job: Job) -> None:
        """Run the training process to its end, pinging and obeying controls meanwhile."""
        parts = self.parts
        files = job.files
        details = parts.details(job)
        atomic.write_json(parts.store.checked(files.spec), {
            "job_id": job.id, "runner_name": parts.cfg.runner_name, "seed": job.state.get("seed", 42),
            "options": details["options"], "max_workers": parts.workers(), "max_memory": parts.cfg.max_memory,
            "source": "abdata" if job.local_only else "bundle", "dataset": details["dataset"]})
        while True:
            rc = self._run(job)
            if rc == DONE and os.path.exists(files.result):
                log.info("training of job %s finished", job.id,
                         extra=job_fields(job.id, job.dataset_id, "training", 1.0))
                return
            if rc == STOPPED:
                raise Stopping()  # someone else sent the worker SIGTERM: treat like a stop, keep the job
            error = _read_error(files.error) or _last_line(files.worker_log)
            if rc == DATASET_ERROR:
                raise JobFailed(error or "the dataset could not be used")
            # A crash or a kill (the OOM killer, an administrator): the checkpoint holds every
            # finished cell, so start again from there, a few times, before giving up.
            attempts = int(job.state.get("train_attempts", 0)) + 1
            job.state = parts.store.update(job.id, train_attempts=attempts)
            how = "killed by signal %d" % -rc if rc < 0 else "exit status %d" % rc
            reason = "training process failed (%s)%s" % (how, ": " + error if error else "")
            if attempts >= MAX_TRAIN_ATTEMPTS:
                raise JobFailed("%s, %d times in a row" % (reason, attempts))
            log.warning("job %s: %s; restarting it from the checkpoint (attempt %d of %d)", job.id, reason,
                        attempts + 1, MAX_TRAIN_ATTEMPTS, extra=job_fields(job.id, job.dataset_id, "training"))

    def _run(self, job: Job) -> int:
        """One run of the training process; returns its exit status."""
        parts = self.parts
        files = job.files
        for leftover in (files.error, files.progress):
            if os.path.exists(leftover):
                os.unlink(leftover)
        proc = TrainingProcess(files.dir, parts.cfg.nice, files.worker_log)
        pgid = proc.start()
        job.state = parts.store.update(job.id, stage="training", worker_pgid=pgid)
        parts.progress.restart()
        if parts.pause_wanted:
            proc.pause()
            parts.progress.pause()
        # The training figures (or the checkpoint's position) replace the download's fraction.
        parts.set(st.PAUSED if proc.paused else st.TRAINING, stage="paused" if proc.paused else "training",
                  message="training", **parts.progress.fields())
        # The trainer itself decides whether worker processes pay off (small grids run in-process).
        log.info("training job %s (process %d, at most %d worker processes, nice %d)", job.id, pgid,
                 parts.workers(), parts.cfg.nice, extra=job_fields(job.id, job.dataset_id, "training", 0.0))
        last_logged = -1
        while True:
            rc = proc.poll()
            p = proc.progress()
            if isinstance(p, dict):  # the training process's file: checked like any input
                last_logged = self._show_progress(job, p, last_logged)
            if rc is not None:
                break
            for request in parts.status.take_requests():
                self._control(job, proc, request)
            if parts.signals.stop:
                parts.set(st.STOPPING)
                parts.notifier.stopping(st.summary(parts.status.snapshot()))
                proc.stop()
                self._save_progress(job)
                where = st.position(parts.status.snapshot())
                log.info("stopping: job %s keeps its checkpoint%s and resumes on the next start", job.id,
                         " at " + where if where else "",
                         extra=job_fields(job.id, job.dataset_id, "training", parts.progress.fraction))
                raise Stopping()
            if job.canceled or job.lease_lost:
                proc.stop()
                raise JobDropped()
            self.lease.tick(job, "paused" if proc.paused else "training")
            time.sleep(TICK)
        job.state = parts.store.update(job.id, worker_pgid=None)
        proc.stop(grace=0.5)  # reap what is left of its group (pool processes)
        return rc

    def _show_progress(self, job: Job, p: Any, last_logged: int) -> int:
        """The training process's progress file on every surface; a journal line per
        tenth of the cells. Returns the last tenth logged."""
        parts = self.parts
        progress = parts.progress
        total = _count(p.get("cells_total"))
        done = min(_count(p.get("cells_done")), total)
        before = (progress.done, progress.total)
        progress.observe(done, total)
        if (progress.done, progress.total) != before:
            self._save_progress(job)  # saved before shown: a restart never shows less
        fields = progress.fields()
        if fields["eta_seconds"] < 0:
            fields["eta_seconds"] = _count(p.get("eta_seconds"), -1)  # the worker's own until we have a rate
        parts.status.update(message=str(p.get("message") or "")[:500], **fields)
        decile = (10 * progress.done // progress.total) if progress.total else -1
        if decile > last_logged and progress.total:
            last_logged = decile
            log.info("%s", st.journal_progress(parts.status.snapshot()),
                     extra=job_fields(job.id, job.dataset_id, "training", progress.fraction))
        return last_logged

    def _control(self, job: Job, proc: TrainingProcess, request: str) -> None:
        parts = self.parts
        if request == "pause" and not proc.paused:
            proc.pause()
            parts.progress.pause()
            parts.pause_wanted = True
            parts.set(st.PAUSED, stage="paused", message="paused")
            log.info("job %s paused at %s", job.id, st.journal_progress(parts.status.snapshot()),
                     extra=job_fields(job.id, job.dataset_id, "paused", parts.progress.fraction))
            job.next_ping = 0.0
        elif request == "resume" and proc.paused:
            proc.resume()
            parts.progress.resume()
            parts.pause_wanted = False
            parts.set(st.TRAINING, stage="training", message="training")
            log.info("job %s resumed at %s", job.id, st.journal_progress(parts.status.snapshot()),
                     extra=job_fields(job.id, job.dataset_id, "training", parts.progress.fraction))
            job.next_ping = 0.0
        elif request == "cancel":
            job.canceled, job.cancel_source = True, "local"

    def _save_progress(self, job: Job) -> None:
        """Keep the shown position and the rate next to the job's state: a restart (even
        after kill -9) shows them at once. Not fsynced: written up to 5 times a second, and
        after a power loss the trainer's own checkpoint position is as good."""
        if self.parts.progress.total:
            atomic.write_json(os.path.join(job.files.dir, SHOWN_FILE), self.parts.progress.saved(),
                              durable=False)


def _count(value: Any, default: int = 0) -> int:
    """A non-negative whole number from a progress file, or ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2 ** 53:
        return default
    return int(value)


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
