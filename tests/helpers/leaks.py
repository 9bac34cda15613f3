"""Find and end processes a test run left behind, however they were detached.

Every process started by the test session inherits ``ABRUNNERD_TEST_SESSION`` from the
environment; daemons that double-fork or get re-parented to init still carry it. At the
end of the session the ones still alive are listed and killed, so a leaked daemon can
neither keep CI's output pipe open nor poll a port that a later test reuses.
"""
import os
import signal
import time
from typing import List, Tuple

MARKER = "ABRUNNERD_TEST_SESSION"


def _carriers(token: str) -> List[Tuple[int, str]]:
    needle = ("%s=%s" % (MARKER, token)).encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            with open("/proc/%s/stat" % entry, "rb") as f:
                if f.read().split(b") ")[-1][:1] == b"Z":
                    continue  # a zombie, waiting for its parent: nothing to end
        except OSError:
            continue
        found.append((int(entry), cmd))
    return found


def reap_leftovers(token: str, grace: float = 5.0) -> List[str]:
    """SIGTERM, then SIGKILL after ``grace`` seconds, every process carrying ``token``."""
    leftovers = _carriers(token)
    for pid, _ in leftovers:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _carriers(token):
        time.sleep(0.2)
    for pid, _ in _carriers(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return ["%d %s" % (pid, cmd[:160]) for pid, cmd in leftovers]
