"""Every page in headless Chromium, with jobs that look like real runs, screenshotted: the job
list, a finished train job's charts (smoothed, hovered, filtered), the compare page, a failed
job, the new-job form, the rollout browser and the workers page.

The web process is the real one from Procfile on its own database; the jobs, metrics and
rollouts are written straight to that database, as a train worker would have. The
screenshots go to the test's tmp folder, or to docs/screenshots (linked from the README)
with RLVR_UPDATE_SCREENSHOTS=1; the committed ones were then cut to 48 colours to stay small."""

from __future__ import annotations

import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import ROOT, free_port

from service.db import Job, accounts, jobs, training
from service.kinds import KINDS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

STEPS = 120
SHOTS = ROOT / "docs" / "screenshots"


def curves(rate: float, seed: int) -> dict[int, dict[str, float]]:
    """Noisy curves shaped like a GRPO run's: reward and pass rate rise at `rate`, KL grows,
    entropy and lengths fall; an eval every 20 steps."""
    rng = random.Random(seed)
    steps = {}
    for step in range(1, STEPS + 1):
        learned = 1 - math.exp(-rate * step)
        row = {
            "reward": 0.2 + 0.7 * learned + rng.gauss(0, 0.08),
            "pass_rate": min(1.0, max(0.0, 0.15 + 0.75 * learned + rng.gauss(0, 0.07))),
            "kl": 0.002 * step * rate * 30 + abs(rng.gauss(0, 0.004)),
            "entropy": 1.4 - 0.6 * learned + rng.gauss(0, 0.03),
            "completions/mean_length": 48 - 20 * learned + rng.gauss(0, 2),
            "grad_norm": 0.8 + rng.gauss(0, 0.15),
            "optim/learning_rate": 1e-5,
        }
        if step % 20 == 0:
            row["eval/greedy/pass_rate"] = 0.2 + 0.7 * learned
        steps[step] = row
    return steps


def train_job(db, user_id: int, name: str, tags: list[str], lr: float, rate: float) -> int:
    spec = KINDS["train"].spec().model_dump(mode="json")
    spec["optim"]["learning_rate"] = lr
    spec["stopping"]["max_steps"] = STEPS
    start = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    series = curves(rate, seed=int(lr * 1e7))
    with db.begin() as s:
        job, _ = jobs.submit(
            s, user_id=user_id, kind="train", spec=spec, total=STEPS, max_attempts=3
        )
        jobs.claim(s, job.id, "train@gpu-node-1")
        for step, metrics in series.items():
            training.save_metrics(s, job.id, step, metrics)
        last = series[STEPS]
        result = {
            "steps": STEPS,
            "stop_reason": "max_steps",
            "reward": round(last["reward"], 4),
            "pass_rate": round(last["pass_rate"], 4),
        }
        jobs.finish(s, job.id, "succeeded", result=result)
        row = s.get(Job, job.id)
        row.name, row.tags, row.progress_done = name, tags, STEPS
        row.started_at, row.finished_at = start, start + timedelta(minutes=14, seconds=32)
        training.save_experiences(s, job.id, rollouts(STEPS))
    return job.id


def rollouts(step: int) -> list[dict]:
    return [
        {
            "step": step,
            "prompt_index": p,
            "sample_index": k,
            "problem_id": f"arith-{p}",
            "prompt": f"Compute {17 + p} + {25 * p}. Answer with the number only.",
            "completion": str(17 + p + 25 * p + (k % 2)),
            "prompt_tokens": 14,
            "completion_tokens": 2,
            "truncated": False,
            "reward": 1.0 if k % 2 == 0 else 0.0,
            "verdict": "pass" if k % 2 == 0 else "fail",
            "advantage": 0.5 if k % 2 == 0 else -0.5,
            "logprob_mean": -0.7,
            "reward_components": {"arithmetic": 1.0 if k % 2 == 0 else 0.0},
            "extra": {},
        }
        for p in range(4)
        for k in range(4)
    ]


@pytest.fixture
def site(browser, procfile, db):
    """(page, base URL, user id): Chromium signed in to a web process of Procfile."""
    bind = f"127.0.0.1:{free_port()}"
    procfile("web", RLVR_BIND=bind, WEB_CONCURRENCY="1")
    with db.begin() as s:
        user = accounts.create_user(s, "ada")
        token = accounts.issue_token(s, user.id, "screenshots")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    base = f"http://{bind}"
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    return page, base, user.id


def shoot(page, name: str, tmp_path: Path) -> None:
    folder = SHOTS if os.environ.get("RLVR_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 10_000


def test_every_page_renders_and_is_screenshotted(site, db, procfile, tmp_path):
    page, base, user_id = site
    base_id = train_job(db, user_id, "grpo baseline", ["arith", "baseline"], 1e-5, 0.03)
    fast_id = train_job(db, user_id, "grpo lr 3e-5", ["arith", "lr-sweep"], 3e-5, 0.06)
    with db.begin() as s:
        failed, _ = jobs.submit(
            s,
            user_id=user_id,
            kind="train",
            spec=KINDS["train"].spec().model_dump(mode="json"),
            total=100,
            max_attempts=1,
        )
        jobs.claim(s, failed.id, "train@gpu-node-2")
        jobs.finish(
            s,
            failed.id,
            "failed",
            error="OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        )
        failed_id = failed.id

    page.goto(f"{base}/jobs")
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 3
    assert "grpo lr 3e-5" in rows.nth(1).inner_text() and "14m 32s" in rows.nth(1).inner_text()
    assert "OutOfMemoryError" in rows.nth(0).inner_text()
    shoot(page, "jobs", tmp_path)

    page.goto(f"{base}/jobs/{fast_id}")
    page.wait_for_selector('figure[data-metric="optim/learning_rate"] canvas')
    drawn = page.eval_on_selector_all("#charts figure", "fs => fs.map(f => f.dataset.metric)")
    assert drawn[:3] == ["reward", "pass_rate", "kl"] and len(drawn) == 8  # every logged metric
    assert page.get_attribute('figure[data-metric="reward"]', "data-points") == str(STEPS)
    assert "optim.learning_rate" in page.inner_text("#settings")

    reward = page.locator('figure[data-metric="reward"]')
    raw = reward.evaluate("f => f.uplot.data[1].slice()")
    page.locator("#smoothing").fill("0.9")
    smoothed, kept = reward.evaluate("f => [f.uplot.data[1].slice(), f.uplot.data[2].slice()]")
    assert kept == raw and smoothed != raw  # the raw line stays behind the smoothed one
    wiggle = lambda ys: sum(abs(b - a) for a, b in zip(ys, ys[1:]))  # noqa: E731
    assert wiggle(smoothed) < wiggle(raw) / 3

    box = reward.locator(".u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    values = reward.locator(".u-legend .u-series .u-value").all_inner_texts()
    assert reward.locator(".u-legend .u-series:visible").count() == 2  # step, smoothed; raw hidden
    assert values[0] not in ("", "–") and values[1] not in ("", "–")  # the step and its value
    kl = page.locator('figure[data-metric="kl"] .u-legend .u-series .u-value').first.inner_text()
    assert kl == values[0]  # the cursors of all charts move together
    shoot(page, "job", tmp_path)

    page.fill("#metric-filter", "eval/")
    visible = page.eval_on_selector_all(
        "#charts figure:not([hidden])", "fs => fs.map(f => f.dataset.metric)"
    )
    assert visible == ["eval/greedy/pass_rate"]

    page.goto(f"{base}/compare?jobs={base_id}&jobs={fast_id}")
    page.wait_for_selector('figure[data-metric="reward"] canvas')
    assert "optim.learning_rate" in page.inner_text("#differences")
    assert "stopping.max_steps" not in page.inner_text("#differences")
    legend = page.locator('figure[data-metric="reward"] .u-legend .u-series').all_inner_texts()
    assert any(f"#{base_id} grpo baseline" in t for t in legend)
    assert any(f"#{fast_id} grpo lr 3e-5" in t for t in legend)
    shoot(page, "compare", tmp_path)

    page.goto(f"{base}/jobs/{failed_id}")
    assert "CUDA out of memory" in page.inner_text("#failure")
    assert "No steps yet" not in page.inner_text("main")
    shoot(page, "failed-job", tmp_path)

    page.goto(f"{base}/jobs/new/train")
    assert page.locator("#common-settings input").count() == 6
    shoot(page, "new-train-job", tmp_path)

    page.goto(f"{base}/jobs/{fast_id}/rollouts")
    assert "Compute 17 + 0." in page.locator("tr.rollout td.prompt").first.inner_text()
    shoot(page, "rollouts", tmp_path)

    procfile("verify")
    page.goto(f"{base}/workers")
    assert page.locator("#pools tbody tr").count() == 3
    assert "verify@" in page.locator("#pools tbody tr").nth(1).inner_text()
    assert "none" in page.locator("#pools tbody tr").nth(0).inner_text()  # no train worker
    shoot(page, "workers", tmp_path)
