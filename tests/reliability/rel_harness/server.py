"""The real job server as a process the suite can kill -9 and restart on the same port.

Why not only ``tests/helpers/server.py``: fault tests need the server inside a network
namespace, restarted on the *same* address after a SIGKILL, and under gunicorn; this
wrapper adds exactly that around the same ``abserver`` CLI.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import requests

from .leaks import register, register_file
from .procs import Proc, wait_for

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "ab-real-small"


def _env() -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return env


def admin(db_url: str, *args: str) -> str:
    """Run an ``abserver`` admin command on ``db_url``; its stdout (stderr is captured too)."""
    cmd, rest = args[0], list(args[1:])
    r = subprocess.run([sys.executable, "-m", "abserver", cmd, "--db", db_url] + rest,
                       capture_output=True, text=True, env=_env(), cwd=str(ROOT), timeout=300)
    if r.returncode != 0:
        raise RuntimeError("abserver %s failed (%d): %s" % (cmd, r.returncode, r.stderr.strip()))
    return r.stdout.strip()


def free_port(host: str = "127.0.0.1") -> int:
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AbServer:
    """``abserver serve`` (or gunicorn with ``workers``) on ``host``; ``wrap`` runs it in a netns."""

    def __init__(self, db_url: str, host: str = "127.0.0.1", port: Optional[int] = None,
                 wrap: Optional[List[str]] = None, options: Optional[List[str]] = None,
                 gunicorn_workers: int = 0, env: Optional[Dict[str, str]] = None,
                 name: str = "abserver") -> None:
        self.db_url = db_url
        self.host = host
        self.port = port or (free_port() if host.startswith("127.") else 18080)
        admin(db_url, "init-db")
        if db_url.startswith("sqlite:///"):
            register_file(db_url[len("sqlite:///"):])
        e = _env()
        e.update(env or {})
        if gunicorn_workers:
            e["ABSERVER_DB"] = db_url
            argv = [sys.executable, "-m", "gunicorn", "-w", str(gunicorn_workers), "-k", "gthread",
                    "--threads", "8", "--backlog", "2048", "-b", "%s:%d" % (host, self.port),
                    "--timeout", "120", "abserver.wsgi:app"]
        else:
            argv = [sys.executable, "-m", "abserver", "serve", "--db", db_url,
                    "--listen", "%s:%d" % (host, self.port)] + list(options or [])
        self.proc = Proc(list(wrap or []) + argv, name=name, env=e, cwd=str(ROOT))
        self.wrap = wrap

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def start(self, timeout: float = 120) -> "AbServer":
        self.proc.start()
        wait_for(self._answers, timeout, interval=0.3, what="job server at %s" % self.base_url)
        return self

    def _answers(self) -> bool:
        if not self.proc.alive():
            raise RuntimeError("job server exited: %s" % self.proc.last_output()[-2000:])
        if self.wrap:  # inside a namespace: the probe must run there too
            code = ("import urllib.request,sys\ntry:\n urllib.request.urlopen(%r,timeout=3)\n"
                    "except urllib.error.HTTPError: sys.exit(0)\nexcept Exception: sys.exit(1)"
                    % (self.base_url + "/api/v1/openapi.json"))
            return subprocess.run(list(self.wrap) + [sys.executable, "-c", code]).returncode == 0
        try:
            requests.get(self.base_url + "/api/v1/openapi.json", timeout=3)
            return True
        except requests.RequestException:
            return False

    def kill9(self) -> None:
        self.proc.kill9_tree()

    def restart(self, timeout: float = 120) -> None:
        """Start again on the same address (retrying while the port is still in TIME_WAIT)."""
        if self.proc.alive():
            self.kill9()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.start(timeout=max(10.0, deadline - time.monotonic()))
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self) -> None:
        self.proc.stop()

    def add_user(self, name: str) -> str:
        return register(admin(self.db_url, "add-user", name).splitlines()[0].strip())

    def import_example(self, owner: str) -> str:
        return admin(self.db_url, "import-dataset", str(EXAMPLE), "--owner", owner).splitlines()[0]

    def submit(self, dataset_id: str, *options: str) -> str:
        return admin(self.db_url, "submit", dataset_id, *options).splitlines()[0]

    # -- owner's view, over HTTP -----------------------------------------------------
    def job(self, token: str, job_id: str) -> Dict[str, Any]:
        r = requests.get(self.base_url + "/api/v1/datasets/evaluation/jobs/" + job_id,
                         headers={"Authorization": "Token " + token}, timeout=30)
        r.raise_for_status()
        return r.json()


class Api:
    """A token holder's HTTP view of a server (for bad-input and security cases)."""

    def __init__(self, base_url: str, token: Optional[str]) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.s = requests.Session()
        self.s.trust_env = False
        if token is not None:
            self.s.headers["Authorization"] = "Token " + token

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 120)
        return self.s.request(method, self.base + path, **kw)


def error_text(resp: requests.Response) -> str:
    """What a client shows: status, code and the server's sentence."""
    try:
        body = resp.json()
        return "HTTP %d %s: %s" % (resp.status_code, body.get("code"), body.get("message"))
    except ValueError:
        return "HTTP %d (not JSON: %r)" % (resp.status_code, resp.text[:100])


def example_dataset_json() -> Dict[str, Any]:
    data = json.loads((EXAMPLE / "dataset.json").read_text())
    data.pop("id", None)
    return data
