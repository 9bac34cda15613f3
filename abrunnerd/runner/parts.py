"""What every step of the job path shares: configuration, token, HTTP client, durable
state, the status surfaces and the stop flags. One object, so that a reload (a new
configuration and client) is seen by every step at once."""
import os
from typing import Any, Dict, Optional

from abrunnerd import atomic
from abrunnerd import status as st
from abrunnerd.answers import parse_details
from abrunnerd.client import BadAnswerError, Client
from abrunnerd.config import Config, Secret
from abrunnerd.reporting.notify import Notifier
from abrunnerd.runner.job import Job, JobFailed
from abrunnerd.runner.signals import Signals
from abrunnerd.state import StateStore


class Parts:
    def __init__(self, cfg: Config, token: Optional[Secret], status: st.RunnerStatus,
                 notifier: Notifier, signals: Signals) -> None:
        self.cfg = cfg
        self.token = token
        self.status = status
        self.notifier = notifier
        self.signals = signals
        self.store = StateStore(cfg.work_dir)
        self.client: Optional[Client] = self.make_client()
        self.runner_id = ""
        self.progress = st.ProgressTracker()  # the held job's position (status model: status.py)
        self.pause_wanted = False  # a paused job stays paused when its training process restarts

    def make_client(self) -> Optional[Client]:
        if self.token is None:
            return None
        return Client(self.cfg.server_url, self.token, timeout=self.cfg.request_timeout,
                      verify=self.cfg.tls_verify(), max_download_size=self.cfg.max_download_size,
                      should_stop=lambda: self.signals.stop)

    def set(self, state: str, **fields: Any) -> None:
        """Change the runner's state on every surface (D-Bus snapshot, STATUS=)."""
        self.status.update(state=state, **fields)
        self.notifier.status(st.summary(self.status.snapshot()))

    def stage(self, job: Job, stage: str) -> None:
        """Record the job's stage durably; the next tick pings at once."""
        job.state = self.store.update(job.id, stage=stage)
        job.next_ping = 0.0

    def forget(self, job: Job) -> None:
        self.store.forget(job.id)
        self.pause_wanted = False

    def workers(self) -> int:
        """Training processes: max_workers, but never more than the CPUs (the trainer
        further caps them at the cells left to do)."""
        return max(1, min(self.cfg.max_workers, os.cpu_count() or 1))

    def details(self, job: Job) -> Dict[str, Any]:
        """The job details saved at claim time (fetched again if that file is gone)."""
        try:
            return parse_details(job.id, atomic.read_json(job.files.details))
        except (OSError, ValueError, RecursionError):  # gone or corrupted: ask again (checked there)
            assert self.client is not None
            try:
                details = self.client.job_details(job.id)
            except BadAnswerError as exc:
                raise JobFailed("the job details are malformed: %s" % exc.problem)
            atomic.write_json(self.store.checked(job.files.details), details)
            return details
