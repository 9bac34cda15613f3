"""Web-page fixtures: the real job server on SQLite with two owners, a job trained for real by
``abrunnerd.trainer`` and uploaded over the protocol, and a real headless Chromium.

Without Chromium the browser tests skip, saying what is missing, unless
``ABRUNNERD_WEB_TESTS=required`` (set by ``.ci/run``) turns that into a failure.
Helpers (sessions, screenshots): tests/helpers/web.py.
"""
import os
import time

import pytest

from helpers import jobflow
from helpers.server import ServerProcess
from helpers.web import GRID, STALL_SECONDS, Site, WebSession, browser_missing, start_chrome, train_example


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Site:
    tmp = tmp_path_factory.mktemp("web")
    srv = ServerProcess(tmp, args=("--ping-interval", "1", "--lease-seconds", "600",
                                   "--stall-seconds", str(STALL_SECONDS))).start()
    try:
        alice, bob = srv.add_user("alice"), srv.add_user("bob")
        dataset, bob_dataset = srv.import_dataset(owner="alice"), srv.import_dataset(owner="bob")
        done_job = jobflow.new_job(srv, alice, dataset, options=GRID)
        claim = jobflow.claim(srv, alice, done_job).json()
        result, model = train_example(jobflow.details(srv, alice, done_job)["options"])
        up = jobflow.upload(srv, alice, done_job, claim["lease_id"], result, model)
        assert up.status_code == 201, up.text
        running_job = jobflow.new_job(srv, alice, dataset)
        lease = jobflow.claim(srv, alice, running_job, name="web-test-runner").json()["lease_id"]
        stalled_job = jobflow.new_job(srv, alice, dataset)
        stalled_lease = jobflow.claim(srv, alice, stalled_job, name="stuck-runner").json()["lease_id"]
        for _ in range(2):  # cells frozen longer than --stall-seconds: flagged stalled
            assert jobflow.ping(srv, alice, stalled_job, stalled_lease, cells_done=1).status_code == 200
            time.sleep(STALL_SECONDS + 0.2)
        assert jobflow.ping(srv, alice, stalled_job, stalled_lease, cells_done=1).json()["stalled"]
        root = srv.base_url[:-len("/api/v1")]
        yield Site(srv, root, alice, bob, dataset, bob_dataset, done_job, model, result, running_job, lease)
    finally:
        srv.stop()


@pytest.fixture
def web_session(site):
    def make(token: str) -> WebSession:
        s = WebSession(site.root)
        assert s.sign_in(token).status_code == 303
        return s
    return make


@pytest.fixture(scope="session")
def chrome(tmp_path_factory):
    """One headless Chromium for the suite (a fresh profile)."""
    missing = browser_missing()
    if missing:
        if os.environ.get("ABRUNNERD_WEB_TESTS") == "required":
            pytest.fail("web tests are required (ABRUNNERD_WEB_TESTS=required) but %s is missing; "
                        "apt-get install chromium chromium-driver python3-selenium" % missing)
        pytest.skip("no real browser here (%s missing; apt-get install chromium chromium-driver "
                    "python3-selenium)" % missing)
    driver = start_chrome(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome, site):
    """The browser, signed out at the start of each test; JavaScript console errors fail the test."""
    chrome.delete_all_cookies()
    chrome.get_log("browser")  # drop what earlier tests left
    yield chrome
    severe = [e for e in chrome.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, "JavaScript console errors: %s" % severe
