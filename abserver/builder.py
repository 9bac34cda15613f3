"""Build submitted jobs' snapshots outside the request workers (``abserver build-worker``).

A submit only checks and records the job in status ``preparing``; reading the owner's
documents and encoding the features bundle (about a minute of pure Python for 1,200
recordings) happens here, in a process of its own, so no gunicorn worker (and no GIL
that a worker's ping threads share) is held by it. ``abserver serve`` starts and
supervises these processes (``serving.ServeArbiter``); people who run gunicorn directly
run ``abserver build-worker`` beside it.

Taking a job is an UPDATE conditioned on the job being ``preparing`` with no live build
lease, so several builders (on SQLite or PostgreSQL) never build one job twice at once.
The build runs on a read connection; the builder renews its lease from a heartbeat thread
while it works; the snapshot is stored and the job flipped to ``pending`` in one short
write transaction (nothing is stored before, so a builder killed mid-build leaves no
half of anything: its lease runs out, or ``serve`` releases it at once when it restarts
the builder, and the job is built again). A build that cannot succeed (``too_wide``, a
document gone, unreadable data) fails the job with the refusal's code and message.
"""
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any, Callable, List, Optional

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from . import events
from .datasets import DatasetError, Progress, build_snapshot, store_snapshot
from .errors import ApiError
from .quota import QuotaExceeded
from .tables import datasets, jobs
from .timefmt import http_date, now

log = logging.getLogger("abserver.builder")

LEASE_SECONDS = 60  # default; a build lease not renewed for this long lets another builder take the job
MIN_LEASE_SECONDS, MAX_LEASE_SECONDS = 5, 3600
POLL_SECONDS = 1.0  # default wait between looks for queued jobs when idle
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 0.05, 60.0
MAX_ATTEMPTS = 3  # builds started on one job; the next take fails it (its builds keep dying)
MAX_BACKOFF = 60.0  # seconds between retries while the database is unreachable


class Stopped(Exception):
    """SIGTERM/SIGINT arrived: give the job back and exit."""


class Lost(Exception):
    """The job stopped being ours while we built it (canceled, or the lease went to another builder)."""


def new_builder_id(kind: str = "builder") -> str:
    """Who holds a build lease, as the job row shows it: ``kind@host:pid:random``."""
    return ("%s@%s:%d:%s" % (kind, socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8]))[-64:]


def _takeable(ts: float):
    return sa.and_(jobs.c.status == "preparing",
                   sa.or_(jobs.c.build_lease_expires.is_(None), jobs.c.build_lease_expires < ts))


def take(engine: sa.engine.Engine, builder_id: str, lease_seconds: float) -> Optional[Any]:
    """The oldest queued job, now leased to ``builder_id``; None when there is none.

    An idle look is one indexed read; the write lock is taken only when there is a job."""
    with engine.connect() as conn:
        candidates = [r.id for r in conn.execute(
            sa.select(jobs.c.id).where(_takeable(now())).order_by(jobs.c.created, jobs.c.id).limit(5))]
    for job_id in candidates:
        with engine.begin() as conn:
            ts = now()
            won = conn.execute(jobs.update().where(jobs.c.id == job_id, _takeable(ts)).values(
                build_owner=builder_id, build_lease_expires=ts + lease_seconds,
                build_attempts=sa.func.coalesce(jobs.c.build_attempts, 0) + 1)).rowcount == 1
            if not won:
                continue  # another builder took it first
            job = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if job.build_attempts > MAX_ATTEMPTS:
                _fail_in(conn, job, "build_interrupted", "the build of this job's snapshot was interrupted %d "
                         "times (the builder process died: out of memory?); see the server log, then "
                         "submit again" % (job.build_attempts - 1))
                continue
        return job
    return None


def _fail_in(conn, job, code: str, message: str) -> bool:
    ts = now()
    done = conn.execute(jobs.update().where(jobs.c.id == job.id, jobs.c.status == "preparing",
                                            jobs.c.build_owner == job.build_owner).values(
        status="failed", error_code=code, status_msg="%s: %s" % (code, message), updated=ts,
        build_owner=None, build_lease_expires=None)).rowcount == 1
    if done:
        events.record(conn, job.id, "failed", {"reason": "%s: %s" % (code, message), "code": code})
    return done


def release(engine: sa.engine.Engine, job_id: str, builder_id: str, refund: bool) -> None:
    """Give a job back to the queue (``refund``: the attempt does not count, we were stopped)."""
    values = {"build_owner": None, "build_lease_expires": None}
    if refund:
        values["build_attempts"] = sa.func.coalesce(jobs.c.build_attempts, 1) - 1
    with engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.status == "preparing",
                                         jobs.c.build_owner == builder_id).values(**values))


def release_builder(engine: sa.engine.Engine, builder_id: str) -> int:
    """Free the leases of a builder known dead (``serve`` restarting it): its jobs are taken
    again at once instead of when the lease runs out."""
    with engine.begin() as conn:
        return conn.execute(jobs.update().where(jobs.c.status == "preparing", jobs.c.build_owner == builder_id)
                            .values(build_owner=None, build_lease_expires=None)).rowcount


class _Heartbeat(threading.Thread):
    """Renews the build lease every quarter lease and records the build's progress on the job
    (the web page and job details show it); notices when the job is no longer ours."""

    def __init__(self, engine: sa.engine.Engine, job_id: str, builder_id: str, lease_seconds: float) -> None:
        super().__init__(name="build-heartbeat", daemon=True)
        self.engine, self.job_id, self.builder_id, self.lease = engine, job_id, builder_id, lease_seconds
        self.lost = threading.Event()
        self._halt = threading.Event()
        self.stage: Optional[tuple] = None

    def run(self) -> None:
        while not self._halt.wait(max(1.0, self.lease / 4.0)):
            try:
                self.beat()
            except sa_exc.DBAPIError as exc:  # the lease may lapse; the store re-checks ownership
                log.warning("could not renew the build lease of job %s: %s", self.job_id,
                            str(getattr(exc, "orig", exc)).strip().splitlines()[:1])

    def beat(self) -> None:
        ts = now()
        values = {"build_lease_expires": ts + self.lease}
        if self.stage is not None:  # shown by job details, `abserver jobs` and the web page
            stage, done, total = self.stage
            values["progress"] = json.dumps({
                "stage": stage, "fraction": done / total if total else None, "eta_seconds": None,
                "message": "%s: %d/%d recordings" % (stage, done, total), "cells_done": None, "cells_total": None,
                "runner_name": None, "runner_version": None, "at": http_date(ts)})
        with self.engine.begin() as conn:
            kept = conn.execute(jobs.update().where(jobs.c.id == self.job_id, jobs.c.status == "preparing",
                                                    jobs.c.build_owner == self.builder_id)
                                .values(**values)).rowcount == 1
        if not kept:
            self.lost.set()

    def stop(self) -> None:
        self._halt.set()


def build_job(engine: sa.engine.Engine, job, builder_id: str, lease_seconds: float = LEASE_SECONDS,
              progress: Optional[Progress] = None, storing: Optional[Callable[[bool], None]] = None,
              quota_bytes: int = 0) -> str:
    """Build the snapshot of ``job`` (leased to ``builder_id``) and queue it for runners.

    Returns ``"pending"`` (built and queued), ``"failed"`` (refused: the job says why) or
    ``"lost"`` (canceled or taken over meanwhile: nothing stored). Raises Stopped (after
    giving the job back) on SIGTERM/SIGINT, and database errors (after giving it back).
    ``storing(True)`` / ``storing(False)`` bracket the final write transaction. A snapshot
    that would take the owner past ``quota_bytes`` (abserver/quota.py) fails the job with
    ``quota_exceeded`` and stores nothing."""
    heartbeat = _Heartbeat(engine, job.id, builder_id, lease_seconds)

    def tick(stage: str, done: int, total: int) -> None:
        heartbeat.stage = (stage, done, total)
        if heartbeat.lost.is_set():
            raise Lost()
        if progress is not None:
            progress(stage, done, total)

    heartbeat.start()
    try:
        try:
            with engine.connect() as conn:  # a read connection: no write lock while building
                dataset = conn.execute(sa.select(datasets).where(datasets.c.id == job.dataset_id)).first()
                if dataset is None or dataset.owner_id != job.owner_id:
                    raise ApiError(422, "dataset_gone", "the dataset %s no longer exists" % job.dataset_id)
                built = build_snapshot(conn, dataset, json.loads(job.options), tick)
        finally:
            heartbeat.stop()
    except Lost:
        return "lost"
    except ApiError as exc:  # the refusals of a submit: too_wide, missing_lowlevel, class rules
        return _fail(engine, job, builder_id, exc.code, exc.message)
    except (DatasetError, ValueError, KeyError, TypeError) as exc:  # unreadable stored data
        log.warning("job %s: the build failed on the stored data: %s", job.id, exc)
        return _fail(engine, job, builder_id, "bad_data", "the dataset's stored data could not be "
                     "read (%s); re-import the dataset and submit again" % str(exc)[:300])
    except (Stopped, KeyboardInterrupt):
        _release_quietly(engine, job.id, builder_id, refund=True)
        raise
    except sa_exc.DBAPIError:
        _release_quietly(engine, job.id, builder_id, refund=True)
        raise
    except MemoryError:
        return _fail(engine, job, builder_id, "build_failed", "not enough memory to build the features bundle "
                     "of this dataset on the server")
    except Exception:  # a defect: building again would fail the same way
        log.exception("job %s: unexpected error while building its snapshot", job.id)
        return _fail(engine, job, builder_id, "build_failed", "internal error while building the snapshot; "
                     "the server log has the details")
    if storing is not None:
        storing(True)
    try:
        return _store(engine, job, builder_id, built, quota_bytes)
    finally:
        if storing is not None:
            storing(False)


def _release_quietly(engine, job_id: str, builder_id: str, refund: bool) -> None:
    try:
        release(engine, job_id, builder_id, refund)
    except Exception as exc:  # the lease runs out anyway
        log.warning("could not give job %s back to the queue (%s); it is built again once its lease "
                    "runs out", job_id, exc)


def _fail(engine, job, builder_id: str, code: str, message: str) -> str:
    with engine.begin() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job.id)).first()
        if row is None or row.build_owner != builder_id or not _fail_in(conn, row, code, message):
            return "lost"
    log.info("job %s: build failed: %s: %s", job.id, code, message)
    return "failed"


def _store(engine, job, builder_id: str, built, quota_bytes: int) -> str:
    """Store the snapshot and make the job claimable, in one short write transaction."""
    for attempt in range(3):
        try:
            return _store_once(engine, job, builder_id, built, quota_bytes)
        except QuotaExceeded as exc:  # the transaction rolled back: nothing stored
            return _fail(engine, job, builder_id, exc.code, exc.message)
        except sa_exc.IntegrityError:  # another builder stored the same bundle at the same moment
            if attempt == 2:
                raise
    return "lost"


def _store_once(engine, job, builder_id: str, built, quota_bytes: int) -> str:
    with engine.begin() as conn:
        query = sa.select(jobs.c.status, jobs.c.build_owner).where(jobs.c.id == job.id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None or row.status != "preparing" or row.build_owner != builder_id:
            return "lost"  # canceled, or our lease lapsed and another builder has it
        snapshot_id = store_snapshot(conn, job.dataset_id, built, quota_bytes)
        conn.execute(jobs.update().where(jobs.c.id == job.id).values(
            status="pending", snapshot_id=snapshot_id, status_msg=None, progress=None, updated=now(),
            build_owner=None, build_lease_expires=None))
        events.record(conn, job.id, "built", {"snapshot_id": snapshot_id})
    return "pending"


class Worker:
    """The loop of ``abserver build-worker``: take a job, build it, repeat; sleep when idle.

    SIGTERM and SIGINT stop it promptly: outside the final store they interrupt the build
    at once (the job goes back to the queue, nothing was stored); during the store they
    let it finish first."""

    def __init__(self, engine: sa.engine.Engine, builder_id: Optional[str] = None,
                 lease_seconds: float = LEASE_SECONDS, poll_seconds: float = POLL_SECONDS,
                 quota_bytes: int = 0) -> None:
        self.engine = engine
        self.quota_bytes = quota_bytes
        self.builder_id = builder_id or new_builder_id()
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.stopping = False
        self._storing = False

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = True
        if not self._storing:
            raise Stopped()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self, once: bool = False, recover: List[str] = ()) -> int:
        """Build until stopped (``once``: until the queue is empty). Returns the jobs built."""
        built = 0
        backoff = 1.0
        try:
            for dead in recover:
                freed = release_builder(self.engine, dead)
                if freed:
                    log.info("took back %d build(s) of the builder %s, which died", freed, dead)
            log.info("builder %s waiting for jobs to prepare", self.builder_id)
            while not self.stopping:
                try:
                    job = take(self.engine, self.builder_id, self.lease_seconds)
                    if job is None:
                        if once:
                            break
                        time.sleep(self.poll_seconds)
                        continue
                    log.info("job %s: building its snapshot (attempt %d)", job.id, job.build_attempts)
                    t0 = time.monotonic()
                    outcome = self.build(job)
                    log.info("job %s: %s after %.1f s", job.id, {"pending": "built, queued for runners",
                                                                  "failed": "build failed",
                                                                  "lost": "canceled or taken over; "
                                                                          "nothing stored"}[outcome],
                             time.monotonic() - t0)
                    built += outcome == "pending"
                    backoff = 1.0
                except sa_exc.DBAPIError as exc:
                    log.warning("database unavailable (%s); retrying in %.0f s",
                                str(getattr(exc, "orig", exc)).strip().splitlines()[:1], backoff)
                    time.sleep(backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
        except Stopped:
            pass
        log.info("builder %s stopped", self.builder_id)
        return built

    def build(self, job) -> str:
        """``build_job`` with SIGTERM held off during the final store only."""
        return build_job(self.engine, job, self.builder_id, self.lease_seconds,
                         storing=lambda flag: setattr(self, "_storing", flag), quota_bytes=self.quota_bytes)


def build_queued(engine: sa.engine.Engine, quota_bytes: int = 0) -> int:
    """Build every queued job now, in this process (tests, ``build-worker --once``)."""
    return Worker(engine, new_builder_id("once"), quota_bytes=quota_bytes).run(once=True)


__all__ = ["Worker", "build_job", "build_queued", "release", "release_builder", "take", "new_builder_id"]
