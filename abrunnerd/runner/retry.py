"""When to try again after a failed turn of the loop, and what the log says about it.

Network trouble and 5xx: capped, jittered backoff (``backoff.py``), one log line per
change of the kind of trouble and one when the server answers again. A rejected token
will not fix itself soon: a long wait (SIGHUP retries at once). A job that ended
canceled, refused or failed: the same backoff as any failure (decisions 7e), so a
server that cancels or refuses everything is not hammered.
"""
import errno
import logging
from typing import Optional

from abrunnerd import messages
from abrunnerd import status as st
from abrunnerd.backoff import Backoff
from abrunnerd.client import AuthError
from abrunnerd.runner.parts import Parts

log = logging.getLogger("abrunnerd")

AUTH_BACKOFF = 900.0  # a rejected token will not fix itself soon; SIGHUP retries at once


class Trouble:
    """The current trouble (its kind, logged once) and the backoff that paces retries."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.backoff = Backoff(cap=300.0)
        self.kind: Optional[str] = None  # also "ping" while status pings fail (lease.py)

    def reset(self) -> None:
        """A new configuration: try at once, and say it again if it still fails."""
        self.backoff.reset()
        self.kind = None

    def recovered(self) -> None:
        if self.kind is not None:
            log.info("%s answers again", self.parts.cfg.server_url)
            self.kind = None
        self.backoff.reset()

    def after_unfinished(self) -> float:
        """A job ended canceled, refused or failed: back off like after any failure."""
        return self.backoff.next_delay()

    def token_rejected(self, exc: AuthError) -> float:
        cfg = self.parts.cfg
        if self.kind != "auth":
            self.kind = "auth"
            log.error("token rejected by %s (HTTP %d): put a valid token into %s and run "
                      "'systemctl reload abrunnerd'; retrying in %d min",
                      cfg.server_url, exc.status, cfg.token_file, AUTH_BACKOFF // 60,
                      extra={"MESSAGE_ID": messages.TOKEN_REJECTED})
        self.parts.set(st.BACKOFF, message="token rejected by " + cfg.server_url,
                       last_error="token rejected by " + cfg.server_url)
        return AUTH_BACKOFF

    def local_trouble(self, exc: OSError) -> float:
        """ENOSPC, permissions: keep the job, say where, retry."""
        what = "is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot be written"
        return self.retry_later(OSError(exc.errno, "work_dir %s %s (%s: %s)"
                                        % (self.parts.cfg.work_dir, what, exc.strerror, exc.filename)))

    def retry_later(self, exc: Exception) -> float:
        delay = self.backoff.next_delay()
        if getattr(exc, "retry_after", None):  # 429/503 with Retry-After or X-RateLimit-Reset-In
            delay = max(delay, float(exc.retry_after))  # type: ignore[attr-defined]
        kind = "%s:%s" % (type(exc).__name__, getattr(exc, "status", ""))
        if self.kind != kind:
            self.kind = kind
            log.warning("%s; retrying with backoff (at most every %d s until it works)", exc, self.backoff.cap)
        else:
            log.debug("still failing the same way; next try in %.0f s", delay)
        self.parts.set(st.BACKOFF, message="%s (retry in %.0f s)" % (exc, delay), last_error=str(exc))
        return delay
