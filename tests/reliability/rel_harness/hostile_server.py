"""A lying job server for the hostile-input harness: a real HTTP server process on
loopback whose answers come from a scenario file the test rewrites for every example.

    python hostile_server.py DIR      # prints its port; reads DIR/scenario.json,
                                      # appends every request to DIR/requests.jsonl

This is a fake on purpose: the real job server never sends these answers. A scenario
maps a route (``jobs``, ``details``, ``claim``, ``ping``, ``fail``, ``whoami``,
``lowlevel``, ``features``, ``result``, ``cancel``) of job 1, and the same names with a
``2:`` prefix for job 2, to an answer::

    {"status": 200, "headers": {...}, "body": <JSON value> | {"raw": "<latin-1 text>"},
     "mode": "plain" | "deep" | "huge" | "slow" | "endless" | "gzip_bomb", "n": int}

``deep``: ``n`` nested lists; ``huge``: a JSON string of ``n`` bytes; ``slow``: the body
at one byte per second (headers first); ``endless``: bytes until the client goes away;
``gzip_bomb``: ``n`` zero bytes gzip-compressed, sent with Content-Encoding: gzip.
"""
import gzip
import http.server
import json
import os
import socketserver
import sys
import threading
import time

ROUTES = ("claim", "ping", "fail", "result", "features", "cancel")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    directory = "."
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _route(self):
        path = self.path.split("?")[0]
        scenario = _scenario(self.directory)
        job2 = scenario.get("job2", "")
        prefix = "2:" if job2 and job2 in path else ""
        if path.endswith("/whoami"):
            return "whoami", scenario
        if path.endswith("/low-level"):
            return "lowlevel", scenario
        if path.rstrip("/").endswith("/datasets/evaluation/jobs"):
            return "jobs", scenario
        last = path.rstrip("/").rsplit("/", 1)[-1]
        if last in ROUTES:
            return prefix + last, scenario
        if "/datasets/evaluation/jobs/" in path:
            return prefix + "details", scenario
        return "other", scenario

    def _record(self, route):
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        with self.lock, open(os.path.join(self.directory, "requests.jsonl"), "a") as f:
            f.write(json.dumps({"t": time.time(), "method": self.command, "path": self.path[:300],
                                "route": route}) + "\n")

    def _answer(self):
        route, scenario = self._route()
        self._record(route)
        spec = scenario.get("answers", {}).get(route) or _default(route)
        try:
            self._send(spec)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    do_GET = do_POST = do_PUT = _answer

    def _send(self, spec):
        mode = spec.get("mode", "plain")
        n = int(spec.get("n", 0))
        body = spec.get("body")
        if isinstance(body, dict) and set(body) == {"raw"}:
            data = body["raw"].encode("latin-1", "replace")
        else:
            data = json.dumps(body).encode("utf-8")
        if mode == "deep":
            data = b"[" * n + b"]" * n
        elif mode == "huge":
            data = b'"' + b"x" * n + b'"'
        elif mode == "gzip_bomb":
            data = gzip.compress(b"\0" * n)
        self.send_response(int(spec.get("status", 200)))
        headers = dict(spec.get("headers") or {})
        headers.setdefault("Content-Type", "application/json")
        if mode == "gzip_bomb":
            headers["Content-Encoding"] = "gzip"
        for key, value in headers.items():
            self.send_header(key, value)
        if mode == "endless":
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b" " * 65536
            while True:
                self.wfile.write(chunk)
        if mode != "slow" or not spec.get("no_length"):
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if mode == "slow":
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(1.0)
            return
        self.wfile.write(data)
        self.close_connection = True


def _default(route):
    if route.startswith("2:") and route != "2:details":
        return {"status": 409, "body": {"code": "already_claimed", "message": "another runner has it"}}
    return {"status": 404, "body": {"code": "not_found", "message": "no such thing"}}


_cache = {"mtime": None, "value": {}}


def _scenario(directory):
    path = os.path.join(directory, "scenario.json")
    try:
        mtime = os.stat(path).st_mtime_ns
        if mtime != _cache["mtime"]:
            with open(path) as f:
                _cache["value"] = json.load(f)
            _cache["mtime"] = mtime
    except (OSError, ValueError):
        pass
    return _cache["value"]


def main():
    Handler.directory = sys.argv[1]
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
