"""Start the real job server (``abserver serve`` or gunicorn) as a process for tests.

    with ServerProcess(tmp_dir) as srv:            # SQLite file in tmp_dir
        token = srv.add_user("alice")
        ds = srv.import_dataset(EXAMPLE_DATASET, owner="alice")
        job = srv.submit(ds, "--c-values", "1", "--gamma-values", "-3")
        requests.get(srv.base_url + "/whoami", headers=srv.auth(token))

``admin(*args)`` runs any ``abserver`` command against the same database.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DATASET = REPO / "examples" / "ab-real-small"
START_TIMEOUT = 90.0
_LISTENING = re.compile(r"(?:listening on|Listening at:) http://([\d.]+):(\d+)")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    """A running job server on a free loopback port; stops (and reaps) on exit."""

    def __init__(self, work_dir, db_url: Optional[str] = None, args: Sequence[str] = (),
                 gunicorn_workers: int = 0, gunicorn_threads: int = 4, wsgi_app: str = "abserver.wsgi:app",
                 gunicorn_timeout: int = 30):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url or "sqlite:///%s" % (self.work_dir / "abserver.db")
        self.args = list(args)
        self.gunicorn_workers = gunicorn_workers
        self.gunicorn_threads = gunicorn_threads
        self.wsgi_app = wsgi_app  # gunicorn mode: the application (benchmarks wrap abserver's)
        self.gunicorn_timeout = gunicorn_timeout
        self.proc: Optional[subprocess.Popen] = None
        self.builder: Optional[subprocess.Popen] = None  # gunicorn mode: `abserver build-worker` beside it
        self.base_url = ""
        self.log_path = self.work_dir / "server.log"

    # -- admin CLI -------------------------------------------------------------------
    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "abserver"] + list(args[:1]) + ["--db", self.db_url] + list(args[1:])
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
        if check and done.returncode != 0:
            raise RuntimeError("abserver %s failed (%d): %s" % (" ".join(args), done.returncode, done.stderr))
        return done

    def add_user(self, name: str) -> str:
        return self.admin("add-user", name).stdout.strip()

    def import_dataset(self, directory=EXAMPLE_DATASET, owner: str = "alice") -> str:
        return self.admin("import-dataset", str(directory), "--owner", owner).stdout.strip()

    def submit(self, dataset_id: str, *args: str) -> str:
        """``abserver submit``: builds the snapshot in the admin command's process, so the job is
        pending (claimable) when this returns."""
        return self.admin("submit", dataset_id, *args).stdout.strip()

    def wait_built(self, token: str, job_id: str, timeout: float = 120.0) -> dict:
        """Job details once the job has left ``preparing`` (its snapshot built by the build worker)."""
        deadline = time.monotonic() + timeout
        while True:
            r = requests.get(self.url("/datasets/evaluation/jobs/%s" % job_id), headers=self.auth(token), timeout=60)
            assert r.status_code == 200, r.text
            body = r.json()
            if body["status"] != "preparing":
                return body
            if time.monotonic() > deadline:
                raise AssertionError("job %s still preparing after %.0f s:\n%s" % (job_id, timeout, self.log_text()[-3000:]))
            time.sleep(0.05)

    @staticmethod
    def auth(token: str) -> dict:
        return {"Authorization": "Token %s" % token}

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- process ----------------------------------------------------------------------
    def start(self) -> "ServerProcess":
        self.admin("init-db")
        log = open(self.log_path, "ab")
        # Submitted jobs are built by a build worker: tests want it to look for work often.
        build_args = [] if "--build-poll" in self.args else ["--build-poll", "0.1"]
        if self.gunicorn_workers:
            env = _env()
            env["ABSERVER_DB"] = self.db_url
            env.update(_config_env(self.args))
            cmd = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers",
                   str(self.gunicorn_workers), "--threads", str(self.gunicorn_threads),
                   "--graceful-timeout", "5", "--timeout", str(self.gunicorn_timeout), "--access-logfile", "-",
                   self.wsgi_app]
            # gunicorn started directly runs no build worker: start one beside it, as docs/server.md says.
            build_args += [a for flag, value in zip(self.args[::2], self.args[1::2])
                           if flag.startswith("--build-") for a in (flag, value)]
            self.builder = subprocess.Popen([sys.executable, "-m", "abserver", "build-worker", "--db", self.db_url]
                                            + build_args, stdout=log, stderr=subprocess.STDOUT, env=_env(),
                                            start_new_session=True)
        else:
            env = _env()
            cmd = [sys.executable, "-m", "abserver", "serve", "--db", self.db_url,
                   "--listen", "127.0.0.1:0"] + self.args + build_args
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("job server exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            m = _LISTENING.search(self.log_text())
            if m:
                self.base_url = "http://%s:%s/api/v1" % (m.group(1), m.group(2))
                try:
                    if requests.get(self.url("/openapi.json"), timeout=5).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("job server did not answer within %ds:\n%s" % (START_TIMEOUT, self.log_text()))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.builder is not None and self.builder.poll() is None:
            self.builder.terminate()
            self.builder.wait(timeout=20)
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _config_env(args: List[str]) -> dict:
    """``--lease-seconds 5`` style serve options as gunicorn-side ``ABSERVER_*`` variables."""
    env = {}
    for flag, value in zip(args[::2], args[1::2]):
        env["ABSERVER_" + flag.lstrip("-").replace("-", "_").upper()] = str(value)
    return env
