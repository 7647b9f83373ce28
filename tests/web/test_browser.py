"""A person's path in headless Chromium (Debian's build, driven by Playwright): sign in,
submit the form (first with a mistake), watch the job finish on its page, screenshot it.

The stack is real: gunicorn, a coordinate and a verify worker from Procfile."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_the_form_and_watch_the_job_finish(web_page, procfile, tmp_path):
    procfile("coordinate")
    procfile("verify")
    page = web_page
    page.click("text=New verify job")

    page.fill("#program", "def square(x):\n    return x * x")
    page.fill("#tests", "assert square(3) == 9\nsquare(4) == 16")
    page.click("button[type=submit]")
    assert page.inner_text("#tests-error") == "line 2 is not an assert statement"

    page.fill("#tests", "assert square(3) == 9\nassert square(-4) == 16")
    page.click("button[type=submit]")
    page.wait_for_selector("#status.succeeded", timeout=60_000)  # the page refreshes itself
    assert "Passed all tests" in page.inner_text("#result")
    assert [b.inner_text() for b in page.query_selector_all(".timeline .badge")] == [
        "queued",
        "running",
        "succeeded",
    ]
    page.screenshot(path=str(tmp_path / "job-page.png"), full_page=True)
    assert (tmp_path / "job-page.png").stat().st_size > 10_000
