"""Helpers for the web-page tests (tests/web): a signed-in HTTP session, screenshots, the browser.

Chromium and chromedriver come from Debian (``chromium``, ``chromium-driver``,
``python3-selenium``). Screenshots of every page go to ``build/web-screenshots/``
(not committed).
"""
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, NamedTuple

import requests

from .server import EXAMPLE_DATASET, REPO, ServerProcess

SCREENSHOTS = REPO / "build" / "web-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
STALL_SECONDS = 1
GRID = {"c_values": [-1, 1, 3], "gamma_values": [-5, -3, -1], "preprocessing_values": ["basic", "lowlevel"]}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--disable-crash-reporter", "--disable-breakpad", "--window-size=1280,1000")


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



class InProcessOwner(NamedTuple):
    url: str
    engine: Any
    token: str
    uid: int
    dataset: str  # the example dataset, imported for the owner


def in_process_owner(db_path: Path) -> InProcessOwner:
    """A migrated SQLite database at ``db_path`` with one owner ('a') and the example dataset:
    for tests that drive the Flask app in this process (``create_app(url).test_client()``)."""
    from abserver import migrations
    from abserver.datasets import import_dataset_dir
    from abserver.db import make_engine
    from abserver.users import add_user, user_id_by_name

    url = "sqlite:///%s" % db_path
    engine = make_engine(url)
    migrations.upgrade(engine)
    token = add_user(engine, "a")
    with engine.connect() as conn:
        uid = user_id_by_name(conn, "a")
    return InProcessOwner(url, engine, token, uid, import_dataset_dir(engine, str(EXAMPLE_DATASET), uid).dataset_id)


def sign_in_client(client, token: str):
    """``client`` (a Flask test client) signed in with ``token`` through the login form."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 303
    return client


def train_example(options: Dict[str, Any]):
    """Train examples/ab-real-small on ``options`` with the project's trainer (as a runner would)."""
    from abrunnerd.gaia.history import dumps_history
    from abrunnerd.trainer import TrainOptions, load_dataset_dir, train

    opts = TrainOptions.from_job_options(options, seed=42)
    trained = train(load_dataset_dir(str(EXAMPLE_DATASET)), opts, workers=1)
    return trained.to_result_json(), dumps_history(trained.model.steps)


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


def browser_missing() -> str:
    """What of Chromium, chromedriver and selenium is absent ('' when all are here)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return ", ".join(missing)


def start_chrome(profile_dir: Path):
    """Headless Chromium with a fresh profile, its console log kept for the tests."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + ("--user-data-dir=%s" % profile_dir,):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


def screenshot(driver, name: str) -> Path:
    """Full-page screenshot into build/web-screenshots/NAME.png (for people to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 6000)")
    driver.set_window_size(1280, max(800, height))
    path = SCREENSHOTS / ("%s.png" % name)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path
