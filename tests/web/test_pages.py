"""The owner's pages in a real headless Chromium against the real server (see conftest.py)."""
import re
import xml.etree.ElementTree as ET

import pytest
import requests
try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the chrome fixture skips (or, in CI, fails) and names what is missing
    By = Keys = WebDriverWait = StaleElementReferenceException = None

from helpers import jobflow
from helpers.web import GRID, screenshot

SVG = "{http://www.w3.org/2000/svg}"


def wait(driver, seconds):
    """A wait that rides over live.js swapping the element it looks at."""
    return WebDriverWait(driver, seconds, ignored_exceptions=[StaleElementReferenceException])


def sign_in(driver, site, token):
    driver.get(site.root + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    wait(driver, 30).until(lambda d: "/login" not in d.current_url)


def text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def test_sign_in_lists_and_dataset_page(browser, site):
    browser.get(site.root + "/jobs")
    assert "/login" in browser.current_url, "signed-out visitors are sent to the sign-in page"
    screenshot(browser, "01-login")
    sign_in(browser, site, site.alice)
    assert browser.current_url.endswith("/jobs"), "after sign-in the page asked for opens"
    body = text(browser)
    assert "Signed in as alice" in body
    rows = browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr")
    assert len(rows) >= 2
    assert any("done" in r.text and "result" in r.text for r in rows)
    assert any("running" in r.text and "web-test-runner" in r.text for r in rows)
    assert any("pending stalled" in r.text for r in rows), "the stalled flag shows"
    screenshot(browser, "02-jobs")
    browser.find_element(By.LINK_TEXT, "Datasets").click()
    link = browser.find_element(By.CSS_SELECTOR, "table.list tbody a")
    screenshot(browser, "03-datasets")
    link.click()
    body = text(browser)
    # examples/ab-real-small: 3 classes of 20 recordings
    classes = browser.find_elements(By.CSS_SELECTOR, "table.list")[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(classes) == 3
    assert all(re.search(r"\s20\s20\s", " %s " % row.text) for row in classes), [r.text for r in classes]
    assert "60 recordings" in body
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.list")[1].find_elements(By.CSS_SELECTOR, "tbody tr")) > 0
    screenshot(browser, "04-dataset")


def test_running_job_progress_advances_as_the_runner_pings(browser, site):
    sign_in(browser, site, site.alice)
    r = jobflow.ping(site.srv, site.alice, site.running_job, site.lease, cells_done=2, cells_total=10,
                     eta_seconds=400)
    assert r.status_code == 200, r.text
    browser.get(site.root + "/jobs/%s" % site.running_job)
    assert "2/10 cells" in browser.find_element(By.ID, "job-progress").text
    browser.execute_script("window.__stillSamePage = true")
    for done in (5, 8):
        r = jobflow.ping(site.srv, site.alice, site.running_job, site.lease, cells_done=done, cells_total=10,
                         eta_seconds=100)
        assert r.status_code == 200, r.text
        wait(browser, 20).until(
            lambda d: "%d/10 cells" % done in d.find_element(By.ID, "job-progress").text)
    assert browser.execute_script("return window.__stillSamePage === true"), "updated in place, no reload"
    # read in one script: live.js may swap the section between two WebDriver calls
    value, history = browser.execute_script(
        "return [document.querySelector('#job-progress progress').value,"
        " document.getElementById('job-history').innerText]")
    assert value == pytest.approx(0.8)
    assert "claimed by web-test-runner" in history and "ping training, 8/10 cells" in history
    assert "ETA" in text(browser)
    screenshot(browser, "05-job-running")
    browser.get(site.root + "/jobs")  # the list refreshes in place too
    browser.execute_script("window.__stillSamePage = true")
    assert jobflow.ping(site.srv, site.alice, site.running_job, site.lease, cells_done=9, cells_total=10,
                        eta_seconds=30).status_code == 200
    wait(browser, 20).until(lambda d: "9/10 cells" in d.find_element(By.CSS_SELECTOR, "table.jobs").text)
    assert browser.execute_script("return window.__stillSamePage === true")


def _svg(session, url):
    r = session.get(url, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("image/svg+xml")
    return ET.fromstring(r.content)


def _group(root, gid):
    return [e for e in root.iter() if e.get("id") == gid]


def test_finished_job_result_page_with_heatmaps_and_downloads(browser, site, tmp_path):
    sign_in(browser, site, site.alice)
    browser.get(site.root + "/jobs/%s" % site.done_job)
    history = browser.find_element(By.ID, "job-history").text
    for kind in ("submitted", "claimed", "done"):
        assert kind in history
    screenshot(browser, "06-job-done")
    browser.find_element(By.LINK_TEXT, "See the result").click()
    res, best = site.result, site.result["parameters"]["model"]
    assert browser.find_element(By.ID, "accuracy").text == "%.2f %%" % res["accuracy"]
    assert best["preprocessing"] in browser.find_element(By.ID, "best-params").text
    images = browser.find_elements(By.CSS_SELECTOR, "img.plot")
    assert len(images) == 1 + 2 * 2, "confusion matrix + one landscape per preprocessing × kernel"
    wait(browser, 60).until(lambda d: all(
        d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i) for i in images))
    screenshot(browser, "07-result")
    http = requests.Session()
    for c in browser.get_cookies():
        http.cookies.set(c["name"], c["value"])
    best_panels = 0
    cells = len(GRID["c_values"]) * len(GRID["gamma_values"])
    for img in images[1:]:
        root = _svg(http, img.get_attribute("src"))
        mesh = _group(root, "grid-cells")
        assert len(mesh) == 1 and len(mesh[0].findall(SVG + "path")) == cells
        best_panels += len(_group(root, "best-cell"))
        ties = _group(root, "tie-band")
        if _group(root, "best-cell"):
            assert ties, "the best cell is in its own tie band"
    assert best_panels == 1, "exactly one best cell over all panels"
    confusion = _svg(http, images[0].get_attribute("src"))
    assert len(_group(confusion, "confusion-cells")[0].findall(SVG + "path")) == 3 * 3
    recalls = browser.find_elements(By.CSS_SELECTOR, "table.confusion tbody tr")
    assert len(recalls) == 3 + 1, "a row per class plus precision"
    # the browser downloads the model by its link
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    browser.find_element(By.PARTIAL_LINK_TEXT, "Model (Gaia .history)").click()
    saved = tmp_path / ("%s.history" % site.done_job)
    wait(browser, 30).until(lambda d: saved.exists() and saved.read_bytes() == site.model)
    # the other downloads, with the browser's own session
    ranking = http.get(site.root + "/jobs/%s/files/ranking.tsv" % site.done_job, timeout=60).text.splitlines()
    assert len(ranking) == 1 + len(site.result["combinations"])
    first = ranking[1].split("\t")
    assert first[:5] == ["1", best["preprocessing"], best["kernel"], str(best["C"]), str(best["gamma"])]
    preds = http.get(site.root + "/jobs/%s/files/predictions.json" % site.done_job, timeout=120).json()
    assert len(preds) == 60
    wrong = sum(1 for row in browser.find_elements(By.CSS_SELECTOR, "#misclassified ~ table tbody tr"))
    truth = {m: c["name"] for c in jobflow.details(site.srv, site.alice, site.done_job)["dataset"]["classes"]
             for m in c["recordings"]}
    assert wrong == sum(1 for m, p in preds.items() if p["value"] != truth[m])
    assert http.get(site.root + "/jobs/%s/files/result.json" % site.done_job, timeout=60).json() == site.result
    for n, img in enumerate((images[0].get_attribute("src"), images[3].get_attribute("src"))):
        browser.get(img)  # each plot on its own, for people to look at
        screenshot(browser, "07%s-plot" % "ab"[n])


def test_submit_and_cancel_a_job(browser, site):
    sign_in(browser, site, site.alice)
    browser.get(site.root + "/datasets/%s" % site.dataset)
    browser.find_element(By.LINK_TEXT, "Submit an evaluation job").click()
    screenshot(browser, "08-submit")
    for box in browser.find_elements(By.CSS_SELECTOR, "input[name=preprocessing]"):
        if box.get_attribute("value") != "nobands" and box.is_selected():
            box.click()
    for field, value in (("c_values", "1, 3"), ("gamma_values", "-3")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "form.submit button[type=submit]").click()
    wait(browser, 60).until(lambda d: re.search(r"/jobs/[0-9a-f-]{36}$", d.current_url))
    job_id = browser.current_url.rsplit("/", 1)[1]
    assert "4 configurations queued" in text(browser)
    options = jobflow.details(site.srv, site.alice, job_id)["options"]
    assert (options["preprocessing_values"], options["c_values"], options["gamma_values"]) == (["nobands"], [1, 3], [-3])
    browser.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait(browser, 30).until(lambda d: d.find_element(By.ID, "job-status").text == "canceled")
    assert jobflow.details(site.srv, site.alice, job_id)["status"] == "canceled"
    assert "canceled" in browser.find_element(By.ID, "job-history").text
    screenshot(browser, "09-canceled")
    # a bad grid comes back as the form with one clear line, nothing queued
    browser.get(site.root + "/datasets/%s/submit" % site.dataset)
    element = browser.find_element(By.ID, "c_values")
    element.clear()
    element.send_keys("1 x")
    browser.find_element(By.CSS_SELECTOR, "form.submit button[type=submit]").click()
    # the refused form is a new page: wait for it (the old one may still be shown right after the click)
    wait(browser, 30).until(lambda d: d.find_elements(By.ID, "submit-error"))
    assert "'x' is not a whole number" in browser.find_element(By.ID, "submit-error").text
    logged = browser.get_log("browser")  # the refused form is answered 400, which Chromium logs
    assert [e["source"] for e in logged] == ["network"] and "400" in logged[0]["message"], logged


def test_sign_out_ends_the_session(browser, site):
    sign_in(browser, site, site.alice)
    cookie = {c["name"]: c["value"] for c in browser.get_cookies()}
    browser.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait(browser, 30).until(lambda d: "/login" in d.current_url)
    assert "You are signed out" in text(browser)
    browser.get(site.root + "/jobs")
    assert "/login" in browser.current_url
    replay = requests.get(site.root + "/jobs", cookies=cookie, allow_redirects=False, timeout=60)
    assert replay.status_code == 302 and "/login" in replay.headers["Location"], "the old cookie is revoked"


def test_keyboard_only_sign_in_and_labelled_controls(browser, site):
    browser.get(site.root + "/login")
    wait(browser, 10).until(lambda d: d.switch_to.active_element.get_attribute("id") == "token",
                                     "the token field has focus (autofocus)")
    active = browser.switch_to.active_element
    active.send_keys(site.alice)
    active.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Sign in"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, 30).until(lambda d: "/login" not in d.current_url)
    pages = ["/jobs", "/datasets", "/datasets/%s" % site.dataset, "/datasets/%s/submit" % site.dataset,
             "/jobs/%s" % site.running_job, "/jobs/%s/result" % site.done_job]
    for path in pages:
        browser.get(site.root + path)
        unlabelled = browser.execute_script("""
            return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button'))
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
              .map(e => e.outerHTML);""")
        assert not unlabelled, "%s: controls without a label: %s" % (path, unlabelled)
        assert not browser.execute_script(
            "return Array.from(document.images).filter(i => !i.alt).map(i => i.src)"), path
        focusable = browser.execute_script("""
            return document.querySelectorAll('a[href], input:not([type=hidden]), select, button').length""")
        body = browser.find_element(By.TAG_NAME, "body")
        body.click()
        seen = set()
        for _ in range(focusable + 2):
            body.send_keys(Keys.TAB) if not seen else browser.switch_to.active_element.send_keys(Keys.TAB)
            el = browser.switch_to.active_element
            seen.add(el.get_attribute("outerHTML")[:200])
        assert len(seen) >= min(focusable, 5), "%s: Tab reaches the page's links and controls" % path
    # the skip link is the first stop and moves focus to the content
    browser.get(site.root + "/jobs")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
