"""A person watching a train job in headless Chromium: submit it by the spec form (first with
a mistake), see the charts grow without a reload, open a rollout, cancel, see it end.

The stack is real: gunicorn from Procfile, a train worker running the tiny model on
arithmetic, Postgres and Redis."""

from __future__ import annotations

import re

import pytest
import yaml
from support import TINY, train_spec

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

STEPS = 300  # more than the test waits for: it cancels the job long before the end


def points(page, metric: str) -> int:
    return int(page.get_attribute(f'figure[data-metric="{metric}"]', "data-points"))


def test_watch_a_train_job_grow_open_a_rollout_and_cancel_it(
    web_page, procfile, tiny_model, tmp_path
):
    procfile("train")
    page = web_page
    page.click("text=New train job")

    spec = train_spec(TINY, steps=STEPS)
    spec["algorithm"]["kl_coef"] = 0.05
    page.fill("#spec", yaml.safe_dump({**spec, "stopping": {"max_steps": 0}}))
    page.click("button[type=submit]")
    assert (
        page.inner_text("#spec-error")
        == "stopping.max_steps: Input should be greater than or equal to 1"
    )
    page.fill("#spec", yaml.safe_dump(spec))
    page.click("button[type=submit]")
    page.wait_for_selector("#status.running", timeout=120_000)

    page.wait_for_selector(
        'figure[data-metric="reward"][data-points]:not([data-points="0"])', timeout=240_000
    )
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    seen = points(page, "reward")
    page.wait_for_function(
        f"""() => Number(document.querySelector('figure[data-metric="reward"]').dataset.points) > {seen}""",
        timeout=120_000,
    )
    assert page.evaluate("window.sameDocument") is True
    drawn = page.eval_on_selector_all(
        "#charts figure", "figures => figures.map(f => f.dataset.metric)"
    )
    assert {"reward", "pass_rate", "kl", "entropy", "completions/mean_length"} <= set(drawn)
    # every point fetched is a point of the drawn line
    plotted, vertices = page.eval_on_selector(
        'figure[data-metric="reward"]',
        "f => [Number(f.dataset.points), f.uplot.data[1].filter(v => v !== null).length]",
    )
    assert plotted == vertices > seen
    done, total = map(int, page.inner_text("#progress").split("/"))
    assert total == STEPS and 1 <= done < STEPS
    assert re.fullmatch(r"· ETA (\d+h )?(\d+m )?\d+s", page.inner_text("#eta")), page.inner_text(
        "#eta"
    )
    page.screenshot(path=str(tmp_path / "train-job-page.png"), full_page=True)
    assert (tmp_path / "train-job-page.png").stat().st_size > 10_000
    job_url = page.url

    page.click("text=Browse rollouts")
    first = page.locator("tr.rollout").first
    step, where = first.locator("td").nth(0).inner_text(), first.locator("td").nth(1).inner_text()
    prompt_index, sample_index = where.split(" · ")
    detail = page.locator(f"#rollout-{step}-{prompt_index}-{sample_index}")
    assert not detail.is_visible()
    first.locator("a.open").click()
    assert detail.is_visible()
    assert "Prompt" in detail.inner_text() and "Completion" in detail.inner_text()
    assert re.fullmatch(
        r"\d+\+\d+", detail.locator("pre").first.inner_text()
    )  # the arithmetic prompt
    assert "Advantage" in detail.inner_text()

    page.goto(job_url)
    page.click("#cancel button")
    page.wait_for_selector("#status.cancelled", timeout=120_000)
    badges = [b.inner_text() for b in page.query_selector_all("#timeline .badge")]
    assert badges[-2:] == ["cancelling", "cancelled"]
    assert page.get_by_role("button", name="Resume").is_visible()
    assert page.get_by_role("link", name="Clone with edits").is_visible()
    page.screenshot(path=str(tmp_path / "cancelled-job-page.png"), full_page=True)
