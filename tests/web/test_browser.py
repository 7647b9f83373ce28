"""A person's path in headless Chromium (Debian's build, driven by Playwright): sign in,
submit the form (first with a mistake), watch the job finish on its page, screenshot it.

The stack is real: gunicorn, a train and a verify worker from deploy/Procfile."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import sync_playwright

from support import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_the_form_and_watch_the_job_finish(browser, procfile, make_user, tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    procfile("web", RLVR_BIND=bind, WEB_CONCURRENCY="1")
    procfile("train")
    procfile("verify")
    _, token = make_user()
    page = browser.new_page()
    page.goto(f"http://{bind}/jobs")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.click("text=New verify job")

    page.fill("#program", "def square(x):\n    return x * x")
    page.fill("#tests", "assert square(3) == 9\nsquare(4) == 16")
    page.click("button[type=submit]")
    assert page.inner_text("#tests-error") == "line 2 is not an assert statement"

    page.fill("#tests", "assert square(3) == 9\nassert square(-4) == 16")
    page.click("button[type=submit]")
    page.wait_for_selector("#status.succeeded", timeout=60_000)  # the page refreshes itself
    assert "Passed all tests" in page.inner_text("#result")
    assert [b.inner_text() for b in page.query_selector_all(".timeline .badge")] == ["queued", "running", "succeeded"]
    page.screenshot(path=str(tmp_path / "job-page.png"), full_page=True)
    assert (tmp_path / "job-page.png").stat().st_size > 10_000
