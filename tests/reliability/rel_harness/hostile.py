"""Running the real daemon against ``hostile_server.py`` for one scenario, and the
invariants checked afterwards (shared by the generated and the named tests)."""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import psutil

from . import leaks
from .daemon import Daemon
from .procs import Proc, wait_for

SERVER_SCRIPT = Path(__file__).resolve().parent / "hostile_server.py"
STOP_LIMIT = 5.0  # docs/runner.md: SIGTERM ends the daemon within 5 s in every state
RSS_LIMIT = 250 << 20
TOKEN = leaks.register("hostile" + "5d" * 28 + "f")


class HostileServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "scenario.json").write_text("{}")
        self.proc = Proc([sys.executable, str(SERVER_SCRIPT), str(self.root)], name="hostile-server")

    def start(self) -> "HostileServer":
        self.proc.start()
        port = wait_for(lambda: (self.proc.last_output().strip().splitlines() or [None])[0], 30,
                        what="hostile server port")
        self.url = "http://127.0.0.1:%s" % port
        return self

    def stop(self) -> None:
        self.proc.stop(timeout=5)

    def set(self, scenario: Dict[str, Any]) -> None:
        tmp = self.root / "scenario.json.tmp"
        tmp.write_text(json.dumps(scenario))
        os.replace(str(tmp), str(self.root / "scenario.json"))
        (self.root / "requests.jsonl").write_text("")

    def requests(self) -> List[Dict[str, Any]]:
        try:
            lines = (self.root / "requests.jsonl").read_text().splitlines()
        except OSError:
            return []
        return [json.loads(l) for l in lines if l.strip()]

    def routes(self) -> List[str]:
        return [r["route"] for r in self.requests()]


def tree(path: Path) -> Dict[str, Any]:
    """Every entry under ``path`` with its mode, size and content digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(path)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest = ""
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(full, str(path))] = (st.st_mode, st.st_size, digest)
    return out


def fill(value: Any, decoy: str, work: str) -> Any:
    """Put the example's real decoy and work_dir paths into {DECOY}/{WORK} placeholders."""
    if isinstance(value, str):
        return value.replace("{DECOY}", decoy).replace("{WORK}", work)
    if isinstance(value, list):
        return [fill(v, decoy, work) for v in value]
    if isinstance(value, dict):
        return {fill(k, decoy, work): fill(v, decoy, work) for k, v in value.items()}
    return value


class Outcome:
    def __init__(self) -> None:
        self.routes: List[str] = []
        self.requests: List[Dict[str, Any]] = []
        self.output = ""
        self.stop_seconds = 0.0
        self.exit_code: Optional[int] = None
        self.peak_rss = 0
        self.work_dir: Optional[Path] = None
        self.work_tree: Dict[str, Any] = {}


def run(server: HostileServer, scenario: Dict[str, Any], seconds: float, until: Any = None,
        extra: Optional[Dict[str, Any]] = None, prepare: Any = None) -> Outcome:
    """One daemon against one scenario for ``seconds`` (or until ``until(routes)``),
    then SIGTERM; every invariant that holds for every scenario is asserted here."""
    base = Path(tempfile.mkdtemp(prefix="hostile-", dir=str(server.root)))
    decoy = base / "decoy"
    (decoy / "victim").mkdir(parents=True)
    (decoy / "victim" / "precious.txt").write_text("do not touch\n")
    (decoy / "abs").write_text("absolute decoy\n")
    (decoy / "x").mkdir()
    work = base / "work"
    if prepare is not None:
        prepare(work)
    server.set(fill(scenario, str(decoy), str(work)))
    before = tree(decoy)
    cfg = {"request_timeout": 3, "max_workers": 1}
    cfg.update(extra or {})
    daemon = Daemon(base, server.url, TOKEN, name="hostile-daemon", work_dir=work, extra=cfg)
    result = Outcome()
    result.work_dir = work
    try:
        daemon.start()
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            try:
                result.peak_rss = max(result.peak_rss, psutil.Process(daemon.proc.pid).memory_info().rss)
            except psutil.NoSuchProcess:
                break
            if until is not None and until(server.routes()):
                time.sleep(0.5)  # let the daemon act on (and log) the answer that satisfied ``until``
                break
            time.sleep(0.1)
        alive = daemon.alive()
        result.requests = server.requests()
        result.routes = [r["route"] for r in result.requests]
        result.work_tree = tree(work) if work.exists() else {}
        t0 = time.monotonic()
        result.exit_code = daemon.proc.stop(timeout=STOP_LIMIT + 10)
        result.stop_seconds = time.monotonic() - t0
        out = result.output = daemon.output()
        assert alive, "the daemon exited by itself:\n" + out[-3000:]
        assert "Traceback" not in out, out[-5000:]
        assert result.stop_seconds <= STOP_LIMIT, "SIGTERM took %.1f s (limit %.0f s):\n%s" % (
            result.stop_seconds, STOP_LIMIT, out[-3000:])
        assert result.exit_code == 0, "exit status %s after SIGTERM:\n%s" % (result.exit_code, out[-3000:])
        assert result.peak_rss <= RSS_LIMIT, "RSS %d MB" % (result.peak_rss >> 20)
        assert tree(decoy) == before, "the decoy tree changed: %s" % (set(tree(decoy)) ^ set(before))
        outside = sorted(p.name for p in base.iterdir())
        assert set(outside) <= {"abrunnerd.yaml", "token", "work", "decoy"}, outside
        bad = [c for c in set(out) if ord(c) < 32 and c not in "\n\t"] + (["\u202e"] if "\u202e" in out else [])
        assert not bad, "raw control characters in the log: %r" % bad
        assert not leaks.find_in_text(out, [TOKEN])
        return result
    finally:
        if daemon.alive():
            daemon.kill9()
        shutil.rmtree(str(base), ignore_errors=True)
