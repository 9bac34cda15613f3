"""Fixtures for the runner's tests: a recording sd_notify socket, a private dbus-daemon,
and a launcher that runs the real daemon as a process with a generated config."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN_GREP_FILES: List[str] = []


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy (generous timeouts: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class NotifyRecorder:
    """A real AF_UNIX datagram socket used as NOTIFY_SOCKET; records every message."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: List[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append(data.decode("utf-8", "replace"))

    def lines(self) -> List[str]:
        return [line for m in list(self.messages) for line in m.split("\n")]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    rec = NotifyRecorder(str(tmp_path / "notify.sock"))
    yield rec
    rec.close()


@pytest.fixture
def private_bus(tmp_path):
    """A private ``dbus-daemon --session`` for this test; yields its address."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed (apt install dbus-daemon)")
    proc = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    address = proc.stdout.readline().decode().strip()
    assert address, "dbus-daemon printed no address"
    yield address
    proc.terminate()
    proc.wait(timeout=10)


class Daemon:
    """The real ``abrunnerd`` as a process, its stderr captured to a file."""

    def __init__(self, tmp: str, config: Dict[str, Any], token: Optional[str],
                 env: Optional[Dict[str, str]] = None) -> None:
        self.tmp = tmp
        self.work_dir = os.path.join(tmp, "work")
        self.config_path = os.path.join(tmp, "abrunnerd.yaml")
        self.token_path = os.path.join(tmp, "token")
        self.token = token
        cfg = {"token_file": self.token_path, "work_dir": self.work_dir, "poll_interval": 1,
               "ping_interval": 1, "max_workers": 2, "log_target": "stderr", "dbus_bus": "none",
               "request_timeout": 5, "runner_name": "test-runner"}
        cfg.update(config)
        self.write_config(cfg)
        if token is not None:
            self.set_token(token)
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.update(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.python = sys.executable  # another runtime's interpreter for compatibility tests
        self.logs: List[str] = []
        self.runs = 0

    def write_config(self, cfg: Dict[str, Any]) -> None:
        import yaml
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f)

    def set_token(self, token: str) -> None:
        with open(self.token_path, "w") as f:
            f.write(token + "\n")
        os.chmod(self.token_path, 0o600)

    def start(self, *args: str) -> "Daemon":
        self.runs += 1
        log = os.path.join(self.tmp, "daemon-%d.log" % self.runs)
        self.logs.append(log)
        TOKEN_GREP_FILES.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([self.python, "-m", "abrunnerd.daemon", "--config",
                                          self.config_path, "--log-level", "debug"] + list(args),
                                         stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env)
        return self

    def output(self) -> str:
        text = ""
        for log in self.logs:
            with open(log, "rb") as f:
                text += f.read().decode("utf-8", "replace")
        return text

    def current_output(self) -> str:
        with open(self.logs[-1], "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, fragment: str, timeout: float = 300.0) -> str:
        return wait_for(lambda: fragment in self.current_output() and self.current_output(), timeout,
                        what=repr(fragment) + " in the daemon's log")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> Optional[int]:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def assert_token_never_shown(self) -> None:
        if self.token:
            assert self.token not in self.output(), "the token appeared in the daemon's output"
            for root, _dirs, files in os.walk(self.work_dir):
                for name in files:
                    if name.endswith((".bin", ".part", "checkpoint")):
                        continue
                    with open(os.path.join(root, name), "rb") as f:
                        assert self.token.encode() not in f.read(), "token found in " + name


@pytest.fixture
def daemon_factory(tmp_path):
    made: List[Daemon] = []

    def make(config: Dict[str, Any], token: Optional[str] = None, env: Optional[Dict[str, str]] = None,
             name: str = "d") -> Daemon:
        tmp = str(tmp_path / name)
        os.makedirs(tmp, exist_ok=True)
        d = Daemon(tmp, config, token, env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
        _kill_workers(d.work_dir)


def _kill_workers(work_dir: str) -> None:
    """Leave no training process behind, even when a test failed halfway: kill the
    process group each held job recorded (our own processes, by id)."""
    import json
    jobs = os.path.join(work_dir, "jobs")
    for name in os.listdir(jobs) if os.path.isdir(jobs) else []:
        try:
            with open(os.path.join(jobs, name, "state.json")) as f:
                pgid = json.load(f).get("worker_pgid")
            if pgid:
                os.killpg(int(pgid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def dbus_status(address: str) -> Dict[str, Any]:
    """GetStatus through a separate process (keeps dbus-python's main loop out of pytest)."""
    code = ("import dbus,json,sys;b=dbus.bus.BusConnection(sys.argv[1]);"
            "o=b.get_object('org.acousticbrainz.Runner1','/org/acousticbrainz/Runner1');"
            "s=dbus.Interface(o,'org.acousticbrainz.Runner1').GetStatus();"
            "print(json.dumps({str(k):(v if isinstance(v,(int,float)) else str(v)) for k,v in s.items()}))")
    proc = subprocess.run([sys.executable, "-c", code, address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)
    if proc.returncode != 0:
        return {}
    import json
    return json.loads(proc.stdout.decode())


# -- the job server side -----------------------------------------------------------------
# A reduced grid (360 cells: a few seconds) and AB's default grid (3600 cells: ~20 s here),
# for tests that need to act while training runs.
GRID_SMALL = ["--c-values", "-1", "1", "3", "5", "--gamma-values", "-3", "-5", "-7",
              "--preprocessing", "basic", "lowlevel", "normalized"]
GRID_DEFAULT: List[str] = []
GRID_MEDIUM = ["--preprocessing", "basic", "lowlevel"]  # AB's C and gamma values: 1440 cells


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_details(srv: Any, token: str, job_id: str) -> Dict[str, Any]:
    import requests
    resp = requests.get(srv.url("/datasets/evaluation/jobs/" + job_id), headers=srv.auth(token), timeout=30)
    resp.raise_for_status()
    return resp.json()


def wait_job_status(srv: Any, token: str, job_id: str, wanted: str, timeout: float = 300.0) -> Dict[str, Any]:
    def check() -> Any:
        d = job_details(srv, token, job_id)
        if d["status"] in ("done", "failed", "canceled") and d["status"] != wanted:
            raise AssertionError("job %s ended %s (%s), not %s" % (job_id, d["status"], d.get("status_msg"), wanted))
        return d if d["status"] == wanted else None
    return wait_for(check, timeout, interval=0.3, what="job %s to be %s" % (job_id, wanted))


def progress_of(work_dir: str, job_id: str) -> Dict[str, Any]:
    import json
    try:
        with open(os.path.join(work_dir, "jobs", job_id, "progress.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def held_state(work_dir: str, job_id: str) -> Dict[str, Any]:
    import json
    try:
        with open(os.path.join(work_dir, "jobs", job_id, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


@pytest.fixture
def owner(server_factory):
    """A running server with user alice and the sample dataset: (srv, token, dataset_id)."""
    from helpers.server import EXAMPLE_DATASET
    srv = server_factory(args=["--ping-interval", "1"])
    token = srv.add_user("alice")
    dataset = srv.import_dataset(EXAMPLE_DATASET, owner="alice")
    return srv, token, dataset


def server_root(srv: Any) -> str:
    return srv.base_url[: -len("/api/v1")] if srv.base_url.endswith("/api/v1") else srv.base_url
