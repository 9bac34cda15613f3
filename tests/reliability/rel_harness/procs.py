"""Start, kill -9 and restart real processes, capturing their output for the token grep.

Why a wrapper: every process the suite starts writes stdout and stderr to a file
under the captures directory, so the security test can grep the whole suite's output
for tokens afterwards; and a kill is always SIGKILL of a known pid (never by name).
"""
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, TypeVar

import psutil

from .record import captures_dir

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.2,
             what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_exc = exc
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s%s" % (
                timeout, what, " (last error: %r)" % last_exc if last_exc else ""))
        time.sleep(interval)


class Proc:
    """A started process with captured output; restartable with the same command line."""

    _counter = 0

    def __init__(self, argv: List[str], name: str, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> None:
        self.argv = list(argv)
        self.name = name
        self.env = env
        self.cwd = cwd
        self.popen: Optional[subprocess.Popen] = None
        self.starts = 0
        self.log_paths: List[Path] = []

    def start(self) -> "Proc":
        Proc._counter += 1
        log = captures_dir() / ("%s-%d-%d-%d.log" % (self.name, os.getpid(), Proc._counter,
                                                     self.starts))
        self.log_paths.append(log)
        fh = open(log, "wb")
        try:
            self.popen = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        finally:
            fh.close()
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        """Everything this process printed, over all its starts."""
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def last_output(self) -> str:
        return self.log_paths[-1].read_text(errors="replace") if self.log_paths else ""

    def descendants(self) -> List[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """SIGKILL the process (its children are left to die or be reaped as they would)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)

    def kill9_tree(self) -> None:
        """SIGKILL the process and every descendant (a power cut, as far as processes go)."""
        kids = self.descendants()
        self.kill9()
        for k in kids:
            try:
                k.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(kids, timeout=30)

    def stop(self, timeout: float = 30) -> Optional[int]:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9_tree()
        # Reap stragglers of the session (training workers) so no process outlives the test.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode

    def restart(self) -> "Proc":
        self.stop()
        return self.start()
