"""Sign-in and form security of the owner pages, over HTTP against the real server (no browser needed)."""
import re

from helpers.server import ServerProcess
from helpers.web import WebSession


def _owner_urls(site):
    job, done, ds = site.running_job, site.done_job, site.dataset
    gets = ["/datasets/%s" % ds, "/datasets/%s/submit" % ds, "/jobs/%s" % job, "/jobs/%s/live" % job,
            "/jobs/%s" % done, "/jobs/%s/result" % done, "/jobs/%s/plots/confusion.svg" % done,
            "/jobs/%s/plots/grid-basic-RBF.svg" % done] + [
        "/jobs/%s/files/%s" % (done, name) for name in ("model.history", "result.json", "predictions.json",
                                                         "ranking.tsv")]
    posts = ["/datasets/%s/submit" % ds, "/jobs/%s/cancel" % job]
    return gets, posts


def test_another_owner_gets_404_on_every_url_of_the_first(site, web_session):
    alice, bob = web_session(site.alice), web_session(site.bob)
    gets, posts = _owner_urls(site)
    for path in gets:
        assert alice.get(path).status_code == 200, path
        r = bob.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert site.dataset not in r.text and site.done_job not in r.text
    for path in posts:
        r = bob.post(path, {"c_values": "1", "gamma_values": "-3", "preprocessing": "basic", "seed": "1",
                            "location": "remote"})
        assert r.status_code == 404, (path, r.status_code)
    assert alice.get("/jobs/%s/live" % site.running_job).headers["X-Job-Status"] in ("running", "pending"), \
        "bob's cancel did not touch alice's job"
    for path in ("/jobs/not-a-uuid", "/datasets/../../etc/passwd", "/jobs/%s/files/../../x" % site.done_job):
        assert alice.get(path).status_code == 404, path


def test_every_form_requires_its_csrf_token(site, web_session):
    alice = web_session(site.alice)
    forms = {"/login": {"token": site.alice}, "/logout": {},
             "/datasets/%s/submit" % site.dataset: {"c_values": "1", "gamma_values": "-3", "preprocessing": "basic",
                                                     "seed": "1", "location": "remote"},
             "/jobs/%s/cancel" % site.running_job: {}}
    pages = {"/login": "/login", "/logout": "/jobs", "/datasets/%s/submit" % site.dataset:
             "/datasets/%s/submit" % site.dataset, "/jobs/%s/cancel" % site.running_job: "/jobs/%s" % site.running_job}
    for path, data in forms.items():
        user = WebSession(site.root) if path == "/login" else alice
        html = user.get(pages[path], allow_redirects=True).text
        assert re.search(r'<form method="post" action="%s"[^>]*>\s*<input type="hidden" name="csrf_token" value="[^"]+"'
                         % re.escape(path), html), "%s: the form carries a token" % path
        for token in (None, "forged", user.csrf(pages[path]) + "x"):
            body = dict(data) if token is None else dict(data, csrf_token=token)
            r = user.http.post(site.root + path, data=body, allow_redirects=False, timeout=60)
            assert r.status_code == 400 and "security token" in r.text, (path, token, r.status_code)
        other = WebSession(site.root)  # a token from another browser's session does not fit this one
        r = user.http.post(site.root + path, data=dict(data, csrf_token=other.csrf("/login")),
                            allow_redirects=False, timeout=60)
        assert r.status_code == 400, path
    assert alice.get("/jobs/%s/live" % site.running_job).headers["X-Job-Status"] in ("running", "pending")
    assert alice.get("/jobs").status_code == 200, "still signed in: the forged sign-out did nothing"


def test_session_cookie_flags_and_the_token_appears_nowhere(site):
    s = WebSession(site.root)
    r = s.sign_in(site.alice)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("abserver_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie, "plain HTTP on loopback: a Secure cookie would never come back"
    assert site.alice not in cookie
    seen = []
    for path in ["/jobs", "/datasets", "/datasets/%s" % site.dataset, "/datasets/%s/submit" % site.dataset,
                 "/jobs/%s" % site.running_job, "/jobs/%s/result" % site.done_job, "/login?next=/jobs"]:
        page = s.get(path, allow_redirects=True)
        assert page.status_code == 200, path
        seen.append(page.text)
        assert site.alice not in page.url
    failed = WebSession(site.root)
    wrong = site.alice[:-4] + "0000" if not site.alice.endswith("0000") else site.alice[:-4] + "1111"
    r = failed.http.post(site.root + "/login", data={"token": wrong, "csrf_token": failed.csrf("/login")}, timeout=60)
    assert r.status_code == 401
    seen.append(r.text)
    for text in seen + [site.srv.log_text()]:
        assert site.alice not in text and wrong not in text
        assert site.alice[:16] not in text, "not even a prefix of the token"


def test_secure_cookie_over_tls(tmp_path):
    """Behind TLS (request scheme https) the same cookie also gets Secure (Flask test client, real app and DB)."""
    from abserver import migrations
    from abserver.app import create_app
    from abserver.db import make_engine
    from abserver.users import add_user

    url = "sqlite:///%s" % (tmp_path / "tls.db")
    migrations.upgrade(make_engine(url))
    token = add_user(make_engine(url), "carol")
    client = create_app(url).test_client()
    page = client.get("/login", base_url="https://abserver.example")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = client.post("/login", data={"token": token, "csrf_token": csrf}, base_url="https://abserver.example")
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_is_rate_limited_per_client(tmp_path):
    srv = ServerProcess(tmp_path / "ratelimit").start()
    try:
        token = srv.add_user("dave")
        root = srv.base_url[:-len("/api/v1")]
        s = WebSession(root)
        statuses = []
        for i in range(11):
            r = s.http.post(root + "/login", data={"token": "%064x" % i, "csrf_token": s.csrf("/login")},
                            allow_redirects=False, timeout=60)
            statuses.append(r.status_code)
        assert statuses == [401] * 10 + [429]
        assert int(r.headers["Retry-After"]) > 0 and "Too many failed sign-ins" in r.text
        r = s.http.post(root + "/login", data={"token": token, "csrf_token": s.csrf("/login")},
                        allow_redirects=False, timeout=60)
        assert r.status_code == 429, "even the right token waits until the window moves on"
        assert s.get("/jobs").status_code == 302
    finally:
        srv.stop()


def test_open_redirect_after_sign_in_is_refused(site):
    for target, expected in (("//evil.example/x", "/jobs"), ("https://evil.example/", "/jobs"),
                             ("/datasets", "/datasets")):
        s = WebSession(site.root)
        r = s.http.post(site.root + "/login", data={"token": site.alice, "csrf_token": s.csrf("/login"),
                                                    "next": target}, allow_redirects=False, timeout=60)
        assert r.status_code == 303 and r.headers["Location"] == expected, (target, r.headers["Location"])


def test_pages_send_a_strict_content_security_policy(site, web_session):
    alice = web_session(site.alice)
    for path in ("/jobs", "/jobs/%s/result" % site.done_job):
        headers = alice.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"


def test_rotating_the_token_or_disabling_the_user_ends_web_sessions(site):
    site.srv.add_user("carol")
    token = site.srv.admin("rotate-token", "carol").stdout.strip()
    s = WebSession(site.root)
    assert s.sign_in(token).status_code == 303 and s.get("/jobs").status_code == 200
    new = site.srv.admin("rotate-token", "carol").stdout.strip()
    assert s.get("/jobs").status_code == 302, "a session from before the rotation is over"
    assert s.sign_in(token).status_code == 401, "the old token signs in no more"
    assert s.sign_in(new).status_code == 303 and s.get("/jobs").status_code == 200
    site.srv.admin("disable-user", "carol")
    assert s.get("/jobs").status_code == 302, "a disabled user's session is over"
    assert s.sign_in(new).status_code == 401
