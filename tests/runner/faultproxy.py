"""A fault injector for the runner's tests: a small real HTTP proxy process in front of
the real job server that answers some requests with 500s, stalls them past the
client's timeout, or truncates / corrupts a download, as the test's rules file says.

    python3 tests/runner/faultproxy.py UPSTREAM PORT_FILE RULES_FILE LOG_FILE

RULES_FILE is JSON, re-read on every request: a list of
``{"path": substring, "method": "GET"|..., "action": "500"|"timeout"|"truncate"|"corrupt"|"drop"|"lose_answer"|"404",
"count": n}``; each matching request uses up one of ``count``. Every request is logged
to LOG_FILE as ``METHOD PATH -> STATUS/ACTION``.
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
       "content-encoding", "content-length"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = ""
    rules_file = ""
    log_file = ""
    lock = threading.Lock()
    session = requests.Session()

    def log_message(self, fmt, *args):  # quiet
        pass

    def _take_rule(self):
        with self.lock:
            try:
                with open(self.rules_file) as f:
                    rules = json.load(f)
            except (OSError, ValueError):
                return None
            for rule in rules:
                if rule.get("count", 0) <= 0 or rule["path"] not in self.path:
                    continue
                if rule.get("method") and rule["method"] != self.command:
                    continue
                rule["count"] -= 1
                with open(self.rules_file + ".tmp", "w") as f:
                    json.dump(rules, f)
                import os
                os.replace(self.rules_file + ".tmp", self.rules_file)
                return rule["action"]
        return None

    def _log(self, what):
        path, _, query = self.path.partition("?")
        ids = ""
        if "recording_ids=" in query:
            from urllib.parse import parse_qs
            ids = " ids=%d" % len(parse_qs(query).get("recording_ids", [""])[0].split(";"))
        with self.lock:
            with open(self.log_file, "a") as f:
                f.write("%s %s%s -> %s\n" % (self.command, path, ids, what))

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        action = self._take_rule()
        if action == "500":
            self._log("500/injected")
            data = b'{"code": "injected", "message": "fault injector: 500", "error": "fault injector: 500"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if action == "404":  # an endpoint this server does not have (AcousticBrainz's API only)
            self._log("404/injected")
            data = b'{"message": "Not Found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if action == "timeout":
            self._log("timeout/injected")
            time.sleep(12)
            self.close_connection = True
            return
        if action == "drop":
            self._log("drop/injected")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        try:
            resp = self.session.request(self.command, self.upstream + self.path, headers=headers, data=body,
                                        allow_redirects=False, timeout=600, stream=False)
        except requests.RequestException:
            self._log("502/upstream down")
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = resp.content
        if action == "lose_answer":  # the server did the work; the client never hears back
            self._log("%d/lose_answer" % resp.status_code)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        sent = data
        if action == "truncate" and len(data) > 10:
            sent = data[: len(data) // 2]
        elif action == "corrupt" and len(data) > 10:
            mid = len(data) // 2
            sent = data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 8]) + data[mid + 8:]
        self._log("%d%s" % (resp.status_code, "/" + action if action else ""))
        self.send_response(resp.status_code)
        for k, v in resp.headers.items():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(sent)
        if len(sent) != len(data):
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def main():
    upstream, port_file, rules_file, log_file = sys.argv[1:5]
    Proxy.upstream, Proxy.rules_file, Proxy.log_file = upstream.rstrip("/"), rules_file, log_file
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
