"""sd_notify without a library: one datagram to $NOTIFY_SOCKET per state change.

A no-op outside systemd. ``WATCHDOG=1`` is sent at most every half watchdog period.
"""
import os
import socket
import time
from typing import Optional

from abrunnerd.sinks import notify_status


class Notifier:
    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET") or None
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last_watchdog = 0.0
        self._last_status: Optional[str] = None

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode("utf-8"), addr)
            return True
        except OSError:
            return False

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", "STATUS=" + notify_status(status))

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.send("STATUS=" + notify_status(status))

    def reloading(self) -> None:
        self.send("RELOADING=1")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", "STATUS=" + notify_status(status))

    def watchdog(self) -> None:
        if self.watchdog_interval is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self.send("WATCHDOG=1")
