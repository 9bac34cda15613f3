"""Web-page fixtures: the real job server on SQLite with two owners, a job trained for real by
``abrunnerd.trainer`` and uploaded over the protocol, and a real headless Chromium.

Chromium and chromedriver come from Debian (``chromium``, ``chromium-driver``,
``python3-selenium``). Without them the browser tests skip, saying so, unless
``ABRUNNERD_WEB_TESTS=required`` (set by ``.ci/run``) turns that into a failure.
Screenshots of every page go to ``build/web-screenshots/`` (not committed).
"""
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, NamedTuple

import pytest
import requests

from helpers import jobflow
from helpers.server import EXAMPLE_DATASET, REPO, ServerProcess

SCREENSHOTS = REPO / "build" / "web-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STALL_SECONDS = 1
GRID = {"c_values": [-1, 1, 3], "gamma_values": [-5, -3, -1], "preprocessing_values": ["basic", "lowlevel"]}


class Site(NamedTuple):
    srv: ServerProcess
    root: str  # http://127.0.0.1:PORT (the pages); srv.base_url is the API
    alice: str  # tokens
    bob: str
    dataset: str  # alice's
    bob_dataset: str
    done_job: str  # alice's, trained for real and uploaded
    model: bytes  # the uploaded .history
    result: Dict[str, Any]
    running_job: str  # alice's, claimed; tests ping it
    lease: str


def _train(options: Dict[str, Any]):
    """Train examples/ab-real-small on ``options`` with the project's trainer (as a runner would)."""
    from abrunnerd.gaia.history import dumps_history
    from abrunnerd.trainer import TrainOptions, load_dataset_dir, train

    opts = TrainOptions.from_job_options(options, seed=42)
    trained = train(load_dataset_dir(str(EXAMPLE_DATASET)), opts, workers=1)
    return trained.to_result_json(), dumps_history(trained.model.steps)


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
        result, model = _train(jobflow.details(srv, alice, done_job)["options"])
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


class WebSession:
    """A signed-in requests session speaking the forms (CSRF token from each page)."""

    def __init__(self, root: str):
        self.root = root
        self.http = requests.Session()

    def csrf(self, path: str) -> str:
        page = self.http.get(self.root + path, timeout=60)
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m, "no CSRF token on %s (%d)" % (path, page.status_code)
        return m.group(1)

    def sign_in(self, token: str) -> requests.Response:
        return self.http.post(self.root + "/login", data={"token": token, "csrf_token": self.csrf("/login")},
                              allow_redirects=False, timeout=60)

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        return self.http.get(self.root + path, timeout=120, **kw)

    def post(self, path: str, data: Dict[str, Any], csrf_from: str = "/jobs") -> requests.Response:
        data = dict(data, csrf_token=self.csrf(csrf_from))
        return self.http.post(self.root + path, data=data, allow_redirects=False, timeout=120)


@pytest.fixture
def web_session(site):
    def make(token: str) -> WebSession:
        s = WebSession(site.root)
        assert s.sign_in(token).status_code == 303
        return s
    return make


# -- the browser -----------------------------------------------------------------------------------
def _browser_missing() -> str:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return ", ".join(missing)


@pytest.fixture(scope="session")
def browser_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("chromium-profile")


@pytest.fixture(scope="session")
def chrome(browser_dir):
    """One headless Chromium for the suite (a fresh profile), with its console log kept."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("ABRUNNERD_WEB_TESTS") == "required":
            pytest.fail("web tests are required (ABRUNNERD_WEB_TESTS=required) but %s is missing; "
                        "apt-get install chromium chromium-driver python3-selenium" % missing)
        pytest.skip("no real browser here (%s missing; apt-get install chromium chromium-driver "
                    "python3-selenium)" % missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1280,1000", "--disable-crash-reporter", "--disable-breakpad", "--user-data-dir=%s" % browser_dir):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chrome, site):
    """The browser, signed out at the start of each test; console errors collected per test."""
    chrome.delete_all_cookies()
    chrome.get_log("browser")  # drop what earlier tests left
    yield chrome
    severe = [e for e in chrome.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, "JavaScript console errors: %s" % severe


def screenshot(driver, name: str) -> Path:
    """Full-page screenshot into build/web-screenshots/NAME.png (for people to look at)."""
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)")
    driver.set_window_size(1280, max(800, height))
    path = SCREENSHOTS / ("%s.png" % name)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path
