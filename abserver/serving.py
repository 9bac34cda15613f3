"""``abserver serve``: the API on gunicorn (threads, timeouts, request-size limits), JSON errors
also for what gunicorn refuses before the application sees it (decisions 7d), and the build
workers that prepare submitted jobs outside the request workers (abserver/builder.py)."""
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("abserver.serve")

# What a request may be before the application sees it (gunicorn's own limits).
LIMIT_REQUEST_LINE = 8190  # bytes of "METHOD URL HTTP/1.1"
LIMIT_REQUEST_FIELDS = 50  # header fields
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes of one header field
CLIENT_TIMEOUT = 30  # seconds a client may take to send a request's line and headers (default)


def client_timeout() -> int:
    """``abserver serve --client-timeout`` (passed to the workers as ABSERVER_CLIENT_TIMEOUT)."""
    try:
        return max(1, min(3600, int(os.environ.get("ABSERVER_CLIENT_TIMEOUT", CLIENT_TIMEOUT))))
    except ValueError:
        return CLIENT_TIMEOUT


def _json_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"code": code, "message": message, "error": message}, sort_keys=True).encode("utf-8")
    head = ("HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n"
            "Content-Length: %d\r\n\r\n" % (status, reason, len(body + b"\n")))
    return head.encode("latin-1") + body + b"\n"


class _SlowClientFilter(logging.Filter):
    """gunicorn logs a client's read timeout as a traceback; one line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (socket.timeout, TimeoutError)):
            record.msg, record.args = "closed a connection whose client sent no complete request in %d s", (
                client_timeout(),)
            record.exc_info, record.exc_text, record.levelno, record.levelname = None, None, logging.INFO, "INFO"
        return True


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded worker; requests it refuses itself get the protocol's JSON errors
    (431 for oversized headers, 414 for an oversized request line) instead of HTML, and a
    client that sends its request slowly is cut off after ``client_timeout()`` seconds."""

    def init_process(self):
        self.log.error_log.addFilter(_SlowClientFilter())
        super().init_process()

    def handle(self, conn):
        try:
            conn.sock.settimeout(client_timeout())
        except OSError:
            pass
        return super().handle(conn)

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, LimitRequestHeaders):
            data = _json_error(431, "Request Header Fields Too Large", "headers_too_large",
                               "request headers are too large or too many (at most %d fields of %d bytes)"
                               % (self.cfg.limit_request_fields, self.cfg.limit_request_field_size))
        elif isinstance(exc, LimitRequestLine):
            data = _json_error(414, "URI Too Long", "uri_too_long",
                               "request line is longer than %d bytes" % self.cfg.limit_request_line)
        elif isinstance(exc, (socket.timeout, TimeoutError)):
            return
        else:
            return super().handle_error(req, client, addr, exc)
        self.log.debug("refused request from %s: %s", (addr or ("",))[0], exc)
        try:
            write_nonblock(client, data)
        except OSError:
            pass


class BuilderSpec:
    """How ``serve`` starts its build workers: how many, and the command of one given its id and
    the ids of dead builders whose leases it should free first."""

    def __init__(self, count: int, argv: Callable[[str, List[str]], List[str]], env: Dict[str, str]) -> None:
        self.count, self.argv, self.env = count, argv, env


class ServeArbiter(Arbiter):
    """gunicorn's arbiter that also keeps ``count`` build-worker processes (abserver/builder.py)
    running: started with the workers, restarted when one dies (after 1 s, doubling up to a
    minute while they keep dying young), sent SIGTERM with the workers on shutdown and killed
    after the graceful timeout. A restarted builder first frees the build leases of the one
    that died, so its job is built again at once."""

    MAX_BACKOFF = 60.0

    def __init__(self, app, builders: BuilderSpec) -> None:
        self.builders = builders
        self.BUILDERS: Dict[int, tuple] = {}  # pid -> (builder id, started)
        self._dead: List[str] = []
        self._backoff = 1.0
        self._next_spawn = 0.0
        self._stopping = False
        super().__init__(app)

    def _spawn_builder(self) -> None:
        import uuid

        builder_id = "builder@%s:%s" % (socket.gethostname()[:40], uuid.uuid4().hex[:12])
        argv = self.builders.argv(builder_id, self._dead[-50:])
        try:
            pid = os.posix_spawn(argv[0], argv, self.builders.env)
        except OSError as exc:
            self.log.error("could not start a build worker (%s); retrying in %.0f s", exc, self._backoff)
            self._next_spawn = time.monotonic() + self._backoff
            return
        self._dead = []
        self.BUILDERS[pid] = (builder_id, time.monotonic())
        self.log.info("started build worker %s (pid %d)", builder_id, pid)

    def _reap_builders(self) -> None:
        for pid, (builder_id, started) in list(self.BUILDERS.items()):
            try:
                wpid, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by gunicorn's waitpid(-1) first
                wpid, status = pid, None
            if not wpid:
                continue
            del self.BUILDERS[pid]
            if self._stopping:
                continue
            self._dead.append(builder_id)
            ran = time.monotonic() - started
            self._backoff = 1.0 if ran > self.MAX_BACKOFF else min(self.MAX_BACKOFF, self._backoff * 2)
            self._next_spawn = time.monotonic() + (1.0 if ran > self.MAX_BACKOFF else self._backoff)
            how = "unknown status" if status is None else (
                "signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status) else "status %d" % os.WEXITSTATUS(status))
            self.log.warning("build worker %s (pid %d) ended (%s) after %.0f s; starting another",
                             builder_id, pid, how, ran)

    def reap_workers(self):
        self._reap_builders()
        super().reap_workers()

    def manage_workers(self):
        super().manage_workers()
        self._reap_builders()
        while not self._stopping and len(self.BUILDERS) < self.builders.count \
                and time.monotonic() >= self._next_spawn:
            self._spawn_builder()

    def stop(self, graceful=True):
        self._stopping = True
        for pid in list(self.BUILDERS):
            self._kill(pid, signal.SIGTERM)
        super().stop(graceful)
        deadline = time.time() + self.cfg.graceful_timeout
        while self.BUILDERS and time.time() < deadline:
            self._reap_builders()
            time.sleep(0.1)
        for pid in list(self.BUILDERS):
            self._kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        self._reap_builders()

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


class GunicornServer(BaseApplication):
    """The app factory under gunicorn, configured from ``abserver serve``'s flags."""

    def __init__(self, app_factory, options: Dict[str, Any], builders: Optional[BuilderSpec] = None):
        self.app_factory = app_factory
        self.options = options
        self.builders = builders or BuilderSpec(0, lambda _id, _dead: [], {})
        super().__init__()

    def run(self):
        try:
            ServeArbiter(self, self.builders).run()
        except RuntimeError as exc:
            print("\nError: %s\n" % exc, file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.app_factory()


def gunicorn_options(bind: str, workers: int, threads: int, timeout: int, graceful_timeout: int,
                     keepalive: int, max_requests: int) -> Dict[str, Any]:
    return {
        "bind": [bind], "workers": workers, "threads": threads, "timeout": timeout,
        "graceful_timeout": graceful_timeout, "keepalive": keepalive,
        "worker_class": "abserver.serving.JsonErrorWorker",
        "limit_request_line": LIMIT_REQUEST_LINE, "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "max_requests": max_requests, "max_requests_jitter": max_requests // 10 if max_requests else 0,
        "worker_connections": 1000, "accesslog": None, "errorlog": "-", "loglevel": "info",
        "proc_name": "abserver",
    }
