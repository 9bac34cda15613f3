"""Malformed and oversized answers from a server, as the runner's client sees them.

The real job server never sends these, so a tiny local HTTP server misbehaves on
purpose (a fake where the real part cannot produce the fault).  Each case records the
message the user would read in the journal.
"""
import hashlib
import http.server
import threading

import pytest

from rel_harness import leaks, record
from rel_harness.procs import wait_for

import abrunnerd.client as client_mod
import abrunnerd.config as config

TOKEN = leaks.register("badansw" + "7c" * 28 + "e")
BIG = 80 << 20  # more than the client's JSON limit (MAX_JSON_SIZE)
J1 = "0b0e9a51-8f0c-4a5e-9d3a-5c1f0e2d7a61"


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}
    sent = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        status, ctype, body = self.routes.get(path, (404, "application/json", b'{"code":"not_found"}'))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if callable(body):
            self.send_header("Content-Length", str(BIG))
            self.end_headers()
            sent = 0
            try:
                for chunk in body():
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            _Handler.sent[path] = sent
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _huge():
    chunk = b'{"jobs": [' + b" " * ((1 << 20) - 10)
    yield chunk
    for _ in range(BIG // (1 << 20) - 1):
        yield b" " * (1 << 20)


@pytest.fixture
def fake_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _client(url, **kw):
    return client_mod.Client(url, config.Secret(TOKEN), timeout=30, **kw)


API = "/api/v1"
CASES = [
    ("answer: job list without 'jobs'", API + "/datasets/evaluation/jobs",
     (200, "application/json", b'{"username": "x"}'), lambda c: c.pending_jobs(), "no 'jobs' list"),
    ("answer: job list is not JSON", API + "/datasets/evaluation/jobs",
     (200, "text/html", b"<html>maintenance</html>"), lambda c: c.pending_jobs(), "not JSON"),
    ("answer: job details are a list", API + "/datasets/evaluation/jobs/" + J1,
     (200, "application/json", b"[1, 2]"), lambda c: c.job_details(J1), "not an object"),
    ("answer: 502 from a proxy with an HTML body", API + "/datasets/evaluation/jobs",
     (502, "text/html", b"<html>Bad Gateway</html>"), lambda c: c.pending_jobs(), "HTTP 502"),
    ("answer: 401 for a revoked token", API + "/whoami",
     (401, "application/json", b'{"code":"bad_token","message":"unknown token"}'),
     lambda c: c.whoami(), "HTTP 401"),
]


@pytest.mark.parametrize("name,path,answer,call,fragment", CASES, ids=[c[0] for c in CASES])
def test_malformed_answers_are_clear_errors(fake_server, name, path, answer, call, fragment):
    _Handler.routes = {path: answer}
    with record.case("bad_input", name) as c:
        with pytest.raises(client_mod.ClientError) as info:
            call(_client(fake_server))
        c.message = str(info.value).replace(fake_server, "<server>")
        assert fragment in c.message
        assert not leaks.find_in_text(c.message, [TOKEN])


def test_oversized_json_answer_is_refused_without_reading_it_all(fake_server):
    """An 80 MiB job list is refused; the client must stop reading near its limit."""
    _Handler.routes = {API + "/datasets/evaluation/jobs": (200, "application/json", _huge)}
    with record.case("bad_input", "answer: 80 MiB job list (oversized response)") as c:
        with pytest.raises(client_mod.ClientError) as info:
            _client(fake_server).pending_jobs()
        c.message = str(info.value).replace(fake_server, "<server>")
        assert "larger than" in c.message
        wait_for(lambda: API + "/datasets/evaluation/jobs" in _Handler.sent, 60, what="server side")
        sent = _Handler.sent[API + "/datasets/evaluation/jobs"]
        c.extra["bytes_read_by_client"] = sent
        assert sent < client_mod.MAX_JSON_SIZE + (8 << 20), (
            "the client read %d bytes of an oversized answer before refusing it; a server "
            "(or proxy) answering gigabytes would exhaust the runner's memory" % sent)


def test_download_longer_than_announced_is_cut(fake_server, tmp_path):
    body = b"A" * 4096
    _Handler.routes = {API + "/f": (200, "application/x-abrunner-features", body)}
    with record.case("bad_input", "answer: features longer than announced") as c:
        with pytest.raises(client_mod.ClientError) as info:
            _client(fake_server).download(fake_server + API + "/f", str(tmp_path / "b"),
                                          sha256=None, size=1000)
        c.message = str(info.value)
        assert "more than the announced" in c.message
        assert not (tmp_path / "b").exists()


def test_download_with_wrong_sha256_is_discarded(fake_server, tmp_path):
    body = b"B" * 4096
    _Handler.routes = {API + "/f": (200, "application/x-abrunner-features", body)}
    with record.case("bad_input", "answer: features with a wrong SHA-256") as c:
        with pytest.raises(client_mod.ClientError) as info:
            _client(fake_server).download(fake_server + API + "/f", str(tmp_path / "b"),
                                          sha256=hashlib.sha256(b"other").hexdigest(), size=4096)
        c.message = str(info.value)
        assert "SHA-256 mismatch" in c.message
        assert not (tmp_path / "b").exists() and not (tmp_path / "b.part").exists()


def test_features_url_on_another_host_gets_no_token(fake_server, tmp_path):
    with record.case("security", "features_url pointing at another host: token not sent") as c:
        with pytest.raises(client_mod.ClientError) as info:
            _client(fake_server).download("http://127.0.0.2:9/steal", str(tmp_path / "b"),
                                          sha256=None, size=10)
        c.message = str(info.value)
        assert "another host" in c.message
