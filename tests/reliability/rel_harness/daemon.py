"""The real runner daemon under test: its config, token file, work_dir and processes.

Runs ``abrunnerd --config FILE`` in the foreground (logging to stderr, which the
harness captures), optionally inside a network namespace.  Kills are SIGKILLs of
known pids: the daemon's whole tree (what systemd does to the unit's cgroup before a
restart) or only its training workers.
"""
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import psutil

from .procs import Proc

ROOT = Path(__file__).resolve().parents[3]
_MAIN = "import sys; from abrunnerd.daemon import main; sys.exit(main())"


class Daemon:
    def __init__(self, base: Path, server_url: str, token: str, name: str = "daemon",
                 extra: Optional[Dict[str, object]] = None, work_dir: Optional[Path] = None,
                 wrap: Optional[List[str]] = None) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.work_dir = Path(work_dir) if work_dir else self.base / "work"
        self.token_path = self.base / "token"
        self.config_path = self.base / "abrunnerd.yaml"
        fd = os.open(str(self.token_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        cfg = {
            "server_url": server_url, "token_file": str(self.token_path),
            "work_dir": str(self.work_dir), "poll_interval": 1, "ping_interval": 1,
            "max_workers": 2, "dbus_bus": "none", "log_target": "stderr", "log_level": "debug",
            "request_timeout": 10, "runner_name": name,
        }
        cfg.update(extra or {})
        self.config_path.write_text("".join("%s: %s\n" % (k, _yaml(v)) for k, v in cfg.items()))
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        argv = [sys.executable, "-c", _MAIN, "--config", str(self.config_path)]
        self.proc = Proc(list(wrap or []) + argv, name=name, env=env, cwd=str(self.base))

    def start(self) -> "Daemon":
        self.proc.start()
        return self

    def alive(self) -> bool:
        return self.proc.alive()

    def workers(self) -> List[psutil.Process]:
        """Training worker processes (and their pool children) of this daemon."""
        out = []
        for p in self.proc.descendants():
            try:
                if any("train_worker" in part for part in p.cmdline()) or \
                        any("train_worker" in part for part in p.parent().cmdline()):
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def kill9_workers(self) -> int:
        """SIGKILL the training worker processes; returns how many were killed."""
        n = 0
        for p in self.workers():
            try:
                p.kill()
                n += 1
            except psutil.NoSuchProcess:
                pass
        return n

    def kill9_pool_child(self) -> int:
        """SIGKILL one process of the trainer's pool (not the training process itself)."""
        for p in self.workers():
            try:
                if any("spawn_main" in part or "forkserver" in part for part in p.cmdline()):
                    p.kill()
                    return 1
            except psutil.Error:
                pass
        return 0

    def kill9(self) -> None:
        """SIGKILL the daemon and everything it started (systemd's KillMode=control-group)."""
        self.proc.kill9_tree()

    def restart(self) -> None:
        if self.proc.alive():
            self.kill9()
        self.proc.start()

    def stop(self) -> None:
        kids = self.proc.descendants()
        self.proc.stop()
        for k in kids:
            try:
                k.kill()
            except psutil.NoSuchProcess:
                pass

    def output(self) -> str:
        return self.proc.output()

    def leftovers(self) -> List[str]:
        """Files a finished runner must not leave: job dirs, temp files, partial downloads."""
        out = []
        if not self.work_dir.exists():
            return out
        for dirpath, dirnames, filenames in os.walk(self.work_dir):
            rel = os.path.relpath(dirpath, self.work_dir)
            for fn in filenames:
                if fn.startswith(".tmp") or fn.endswith(".part") or rel.startswith("jobs"):
                    out.append(os.path.join(rel, fn))
            if rel.startswith("jobs") and rel != "jobs" and not filenames and not dirnames:
                out.append(rel + "/")
        return sorted(out)


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'%s'" % str(value).replace("'", "''")
