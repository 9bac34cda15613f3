"""``abserver serve``: the API on gunicorn (threads, timeouts, request-size limits), JSON errors
also for what gunicorn refuses before the application sees it (decisions 7d)."""
import json
import logging
import os
import socket
from typing import Any, Dict

from gunicorn.app.base import BaseApplication
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


class GunicornServer(BaseApplication):
    """The app factory under gunicorn, configured from ``abserver serve``'s flags."""

    def __init__(self, app_factory, options: Dict[str, Any]):
        self.app_factory = app_factory
        self.options = options
        super().__init__()

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
