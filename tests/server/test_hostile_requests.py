"""Issue 17's odds and ends as named regressions: terminal escapes, UUID forms, long error
lists, range and conditional requests, oversized headers: every answer JSON with a code."""
import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import requests
from helpers.jobflow import claim, new_job, ping


def test_runner_name_with_terminal_escapes_is_shown_escaped_by_abserver_jobs(world):
    srv = world.srv
    job = new_job(srv, world.alice, world.dataset)
    hostile = "evil\x1b]0;owned\x07\x1b[2J\u202eknil"
    lease = claim(srv, world.alice, job, name=hostile).json()["lease_id"]
    assert ping(srv, world.alice, job, lease, runner_name=hostile).status_code == 200
    listing = srv.admin("jobs").stdout
    line = next(l for l in listing.splitlines() if l.startswith(job))
    assert "\x1b" not in listing and "\x07" not in listing and "\u202e" not in listing
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\u202eknil" in line


def test_uuid_forms_are_canonicalised_and_answered_canonical(world):
    srv, auth = world.srv, world.srv.auth(world.alice)
    job = new_job(srv, world.alice, world.dataset)
    for form in (job.upper(), "{%s}" % job, "urn:uuid:%s" % job, job.replace("-", "")):
        r = requests.get(srv.url("/datasets/evaluation/jobs/%s" % form), headers=auth)
        assert r.status_code == 200 and r.json()["id"] == job, (form, r.text)
    r = requests.post(srv.url("/datasets/evaluation/jobs/%s/cancel" % job.upper()), headers=auth)
    assert r.status_code == 200 and r.json()["job_id"] == job
    mbid = str(uuid.uuid4())
    r = requests.put(srv.url("/low-level/%s" % mbid.upper()), json={"lowlevel": {}}, headers=auth)
    assert r.status_code == 200 and r.json()["mbid"] == mbid


def test_error_lists_are_truncated(world):
    srv = world.srv
    body = {"field_%06d" % i: 1 for i in range(50000)}
    r = requests.post(srv.url("/datasets/evaluation/jobs/%s/claim" % world.job), json=body,
                      headers=srv.auth(world.alice))
    assert r.status_code == 400 and r.json()["code"] == "unknown_field"
    assert len(r.content) < 2000 and "and 49990 more" in r.json()["message"]


def test_multi_range_is_416_with_content_range_and_if_none_match_star_is_304(world):
    srv, auth = world.srv, world.srv.auth(world.alice)
    url = srv.url("/datasets/evaluation/jobs/%s/features" % world.job)
    size = int(requests.head(url, headers=auth).headers["Content-Length"])
    r = requests.get(url, headers=dict(auth, Range="bytes=0-1,5-9"))
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */%d" % size
    assert r.json()["code"] == "bad_range"
    assert requests.get(url, headers=dict(auth, **{"If-None-Match": "*"})).status_code == 304
    etag = requests.head(url, headers=auth).headers["ETag"]
    assert requests.get(url, headers=dict(auth, **{"If-None-Match": '"x", W/%s' % etag})).status_code == 304


def _raw(srv, request: bytes) -> bytes:
    host = urlsplit(srv.base_url)
    with socket.create_connection((host.hostname, host.port), timeout=30) as sock:
        sock.sendall(request)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_oversized_headers_are_a_json_431(world):
    srv = world.srv
    answer = _raw(srv, b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431"), head[:200]
    assert json.loads(body)["code"] == "headers_too_large"
    answer = _raw(srv, b"GET /api/v1/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414") and json.loads(body)["code"] == "uri_too_long"


def test_every_error_status_is_json_with_a_code(world):
    srv, auth = world.srv, world.srv.auth(world.alice)
    cases = [
        requests.get(srv.url("/nowhere"), headers=auth),
        requests.delete(srv.url("/whoami"), headers=auth),
        requests.get(srv.url("/whoami")),
        requests.post(srv.url("/datasets"), data=b"x", headers=dict(auth, **{"Content-Type": "text/plain"})),
        requests.get(srv.url("/datasets/evaluation/jobs/%s" % uuid.uuid4())),
        requests.get(srv.base_url.replace("/api/v1", "/no-such-page")),  # "/" is the owners' web pages
    ]
    for r in cases:
        assert r.status_code >= 400 and r.headers["Content-Type"].startswith("application/json"), r.text
        assert r.json()["code"] and r.json()["message"] == r.json()["error"]


def test_a_slow_client_is_cut_off_with_one_log_line(tmp_path):
    """A client trickling its headers cannot hold a worker thread: closed after --client-timeout."""
    from helpers.server import ServerProcess

    with ServerProcess(tmp_path, args=("--client-timeout", "2")) as srv:
        host = urlsplit(srv.base_url)
        with socket.create_connection((host.hostname, host.port), timeout=30) as sock:
            sock.sendall(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n")  # never finished
            start = time.monotonic()
            assert sock.recv(100) == b""
            assert time.monotonic() - start < 15
        deadline = time.monotonic() + 10
        while "no complete request in 2 s" not in srv.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "no complete request in 2 s" in srv.log_text()
        assert "Traceback" not in srv.log_text()
