"""The runner's loop: start, one turn at a time until stopped, reload on SIGHUP.

A turn (``loop_once``) takes the held job, or polls and claims a new one, and walks
it down the data path in ``process_job``. ``loop_once`` is also the error funnel:
every failure of a turn ends there and becomes a wait (``retry.py``).
"""
import logging
import os
import time
from typing import Any, Callable, Optional

from abrunnerd import messages
from abrunnerd import status as st
from abrunnerd.client import AuthError, ClientError, Interrupted
from abrunnerd.config import Config, ConfigError, Secret
from abrunnerd.reporting.notify import Notifier
from abrunnerd.runner.abonly import AbOnly
from abrunnerd.runner.claim import Claimer
from abrunnerd.runner.delivery import Delivery
from abrunnerd.runner.fetch import Fetcher
from abrunnerd.runner.job import Job, JobDropped, JobEnded, JobFailed, read_shown
from abrunnerd.runner.lease import LeaseKeeper
from abrunnerd.runner.parts import Parts
from abrunnerd.runner.retry import Trouble
from abrunnerd.runner.signals import TICK, Signals, Stopping
from abrunnerd.runner.training import Training

log = logging.getLogger("abrunnerd")

EX_NOPERM = 77  # --once with a rejected token
EX_CONFIG = 78


class Runner:
    def __init__(self, cfg: Config, token: Optional[Secret], status: st.RunnerStatus,
                 notifier: Notifier, signals: Signals, once: bool = False,
                 reload_config: Optional[Callable[[], Any]] = None) -> None:
        self.parts = Parts(cfg, token, status, notifier, signals)
        self.signals = signals
        self.once = once
        self.reload_config = reload_config
        self.trouble = Trouble(self.parts)
        self.lease = LeaseKeeper(self.parts, self.trouble)
        self.ab_only = AbOnly(self.parts)
        self.claimer = Claimer(self.parts, self.lease, self.ab_only)
        self.fetcher = Fetcher(self.parts, self.lease, self.ab_only)
        self.training = Training(self.parts, self.lease)
        self.delivery = Delivery(self.parts, self.lease, self.ab_only)
        self.once_done = False
        self.exit_code = 0

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        parts = self.parts
        parts.store.ensure_dirs()
        parts.runner_id = parts.store.runner_id()
        parts.status.update(server_url=parts.cfg.server_url, runner_name=parts.cfg.runner_name)
        if parts.token is None:
            self._no_token()
        else:
            parts.set(st.IDLE, message="starting")
        parts.notifier.ready(st.summary(parts.status.snapshot()))

    def run(self) -> int:
        """The main loop: until stopped (or, with --once, until one job is done)."""
        parts = self.parts
        try:
            self.start()
        except OSError as exc:  # an unusable work_dir is a configuration problem: exit 78, not a crash
            log.error("work_dir %s cannot be used (%s%s): create it writable for the daemon's user and "
                      "restart", parts.cfg.work_dir, exc.strerror or exc,
                      ": " + exc.filename if isinstance(exc.filename, str) else "")
            return EX_CONFIG
        while not self.signals.stop:
            wait = self.loop_once()
            if self.once and self.once_done:
                break
            self.sleep(wait)
        parts.set(st.STOPPED, message="stopped")
        parts.notifier.stopping(st.summary(parts.status.snapshot()))
        if parts.client:
            parts.client.close()
        return self.exit_code

    def sleep(self, seconds: float) -> None:
        """Sleep in small steps, waking early for a signal; keep the watchdog fed."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (self.signals.stop or self.signals.reload):
            self.parts.notifier.watchdog()
            self.parts.status.take_requests()  # no job: pause/resume/cancel have nothing to act on
            time.sleep(min(TICK * 2.5, max(0.0, deadline - time.monotonic())))

    def handle_reload(self) -> None:
        if not self.signals.reload:
            return
        self.signals.reload = False
        if self.reload_config is None:
            return
        parts = self.parts
        parts.notifier.reloading()
        try:
            cfg, token = self.reload_config()
        except Exception as exc:  # keep running on the old config; say what is wrong
            from abrunnerd.exitcodes import config_problem
            reason = config_problem(exc, "abrunnerd")[0] if isinstance(exc, ConfigError) else str(exc)
            if reason.startswith("configuration error in "):  # the status line says "configuration refused"
                reason = reason[len("configuration error in "):]
            log.error("configuration not reloaded, keeping the previous one%s: %s",
                      " (still without a token)" if parts.token is None else "", reason)
            parts.set(parts.status.snapshot().get("state", st.IDLE), config_error=reason)
        else:
            parts.cfg, parts.token = cfg, token
            if parts.client:
                parts.client.close()
            parts.client = parts.make_client()
            self.lease.reset()
            self.trouble.reset()
            self.ab_only.reset()
            log.info("configuration reloaded from %s", cfg.path)
            parts.status.update(config_error="")
            if token is None:
                self._no_token()
            elif parts.status.snapshot().get("state") == st.NO_TOKEN:
                parts.set(st.IDLE, message="token read; looking for jobs", next_poll=0)
        parts.notifier.ready(st.summary(parts.status.snapshot()))

    def _no_token(self) -> None:
        cfg = self.parts.cfg
        text = ("no token: put the token into %s (chown root:abrunner, chmod 0640) and run "
                "'systemctl reload abrunnerd'" % cfg.token_file)
        if st.is_example_url(cfg.server_url):
            text += "; server_url in %s is still the shipped example (%s): set your job server's URL" % (
                cfg.path, cfg.server_url)
        log.warning(text, extra={"MESSAGE_ID": messages.TOKEN_MISSING})
        self.parts.set(st.NO_TOKEN, message=text)

    # -- one turn of the loop: the error funnel --------------------------------------------
    def loop_once(self) -> float:
        """Do the next piece of work; return how long to wait before the next turn."""
        self.handle_reload()
        parts = self.parts
        if parts.client is None:
            if self.once:
                self.once_done = True
            return parts.cfg.poll_interval
        try:
            held = parts.store.held_jobs()
            if held:
                if not self.process_job(held[0], resumed=True):
                    return self._after_unfinished()
            else:
                job_id = self.claimer.poll_and_claim()
                if job_id is None:
                    self.trouble.recovered()
                    parts.set(st.IDLE, job_id="", dataset_id="", stage="", fraction=0.0, cells_done=0,
                              cells_total=0, eta_seconds=-1, message="idle: no pending jobs",
                              next_poll=int(time.time() + parts.cfg.poll_interval))
                    if self.once:
                        self.once_done = True
                    return parts.cfg.poll_interval
                if not self.process_job(job_id, resumed=False):
                    return self._after_unfinished()
            self.trouble.recovered()
            if self.once:
                self.once_done = True
            return 0.0
        except (Stopping, Interrupted):
            return 0.0
        except AuthError as exc:
            delay = self.trouble.token_rejected(exc)
            if self.once:  # cron/debugging: waiting a quarter of an hour helps nobody
                self.once_done, self.exit_code = True, EX_NOPERM
            return delay
        except ClientError as exc:
            return self.trouble.retry_later(exc)
        except OSError as exc:  # local trouble (ENOSPC, permissions): keep the job, say where, retry
            return self.trouble.local_trouble(exc)
        except Exception as exc:  # a bug or the host (disk full…): say so, keep the job, retry later
            log.exception("unexpected error, retrying with backoff: %s", exc)
            return self.trouble.retry_later(exc)

    def _after_unfinished(self) -> float:
        if self.once:
            self.once_done = True
        return self.trouble.after_unfinished()

    # -- one job, start to end: the data path ------------------------------------------------
    def process_job(self, job_id: str, resumed: bool) -> bool:
        """True when the job was done (uploaded or kept); False when it ended otherwise."""
        parts = self.parts
        files = parts.store.files(job_id)
        if resumed:
            try:
                state = parts.store.load_checked(job_id)
            except (OSError, ValueError) as exc:
                parts.store.quarantine(job_id, str(exc))
                return False
        else:
            state = parts.store.load(job_id) or {"job_id": job_id}
        job = Job(job_id, files, state)
        # A resumed job shows the position it last showed (shown.json), never 0/0.
        parts.progress = st.ProgressTracker.from_saved(read_shown(files.dir))
        parts.set(st.RESUMING if resumed else st.CLAIMED, job_id=job_id, dataset_id=job.dataset_id or "",
                  stage=job.state.get("stage", "claimed") if resumed else "claimed", message="",
                  next_poll=0, **parts.progress.fields())
        try:
            if resumed:
                self.lease.resume(job)  # kill stale training processes, re-claim with the lease id
            if job.state.get("failure"):
                raise JobFailed(job.state["failure"])  # a failure report still to be made
            if not os.path.exists(files.result):
                self.fetcher.fetch(job)
                self.training.train(job)
            self.delivery.upload(job)
            return True
        except JobFailed as exc:
            self.delivery.report_failure(job, exc.reason)
        except JobDropped:
            self.delivery.end_unfinished(job)
        except JobEnded:
            pass
        return False
