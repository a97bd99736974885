"""The UI as an operator sees it: log in through the FAB login page with the generated admin password,
open the pipeline's grid, and read every task's state of a finished run from the grid's own tooltips.

Playwright drives Debian's chromium (scripts/system_deps.sh); it downloads no browser. A screenshot of
the grid is saved under the stack's state folder; UPDATE_SCREENSHOT=1 also writes docs/images/ui-grid.png.
"""

from __future__ import annotations

import os
import shutil

import pytest

from demo.stack import config
from tests.e2e import helpers
from tripclick_ops import outcomes

CHROMIUM = "/usr/bin/chromium"
# A day no other e2e test uses, run only when the stack holds no succeeded run (`make demo` leaves one).
DAY = "2020-09-05"
# Generous bounds for a loaded 2-core machine: the api-server renders the UI and answers the grid's calls.
PAGE_TIMEOUT_MS = 120_000
SCREENSHOT_DOC = helpers.REPO / "docs" / "images" / "ui-grid.png"


@pytest.fixture(scope="module")
def finished_run(stack) -> tuple[str, list[str]]:
    """(run_id, task ids) of a succeeded run of the pipeline."""
    runs = stack.airflow.call(
        "GET", f"/dags/{helpers.DAG_ID}/dagRuns", params={"state": "success", "order_by": "-end_date"}
    )["dag_runs"]
    if runs:
        run_id = runs[0]["dag_run_id"]
    else:
        stack.reset_day(DAY)
        stack.generate(DAY)
        run = stack.run(DAY)
        assert run.state == "success", {t: ti["state"] for t, ti in run.tasks.items()}
        run_id = run.run_id
    tasks = [ti["task_id"] for ti in stack.airflow.tasks(run_id)]
    assert len(tasks) >= len(helpers.STAGES), tasks
    return run_id, tasks


def test_the_admin_logs_in_and_the_grid_shows_every_task_as_a_good_day_leaves_it(stack, finished_run):
    from playwright.sync_api import expect, sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} missing: run `make system-deps` (Debian package chromium)")
    run_id, tasks = finished_run
    url = config.airflow_url()
    password = config.load_secrets()["admin_password"]
    shots = config.state("screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Root (the e2e layer runs as root) cannot use chromium's sandbox.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            expect.set_options(timeout=PAGE_TIMEOUT_MS)
            page.goto(f"{url}/dags/{helpers.DAG_ID}/runs/{run_id}")
            # Not logged in: the UI sends the browser to FAB's login page.
            page.wait_for_url("**/auth/login/**")
            page.locator("input[name=username]").fill(config.ADMIN_USER)
            page.locator("input[name=password]").fill(password)
            page.locator("input[type=submit], button[type=submit]").first.click()
            page.wait_for_url(lambda target: "/auth/login" not in target)
            if f"/runs/{run_id}" not in page.url:
                page.goto(f"{url}/dags/{helpers.DAG_ID}/runs/{run_id}")

            states = {}
            for task_id in tasks:
                cell = page.locator(f"[data-testid='grid-{run_id}-{task_id}']")
                expect(cell).to_be_visible()
                cell.hover()
                tooltip = page.get_by_role("tooltip").filter(has_text=f"Task ID: {task_id}")
                expect(tooltip).to_be_visible()
                states[task_id] = tooltip.inner_text()
                page.mouse.move(0, 0)
                expect(tooltip).to_be_hidden()
            # A good day skips discard_partial_day (it acts only on a failed day); every other task succeeded.
            expected = {t: "Skipped" if t in outcomes.SKIPPED_ON_A_GOOD_DAY else "Success" for t in states}
            assert {t: text for t, text in states.items() if f"State: {expected[t]}" not in text} == {}
            assert set(states) == set(tasks)

            shot = shots / "ui-grid.png"
            page.screenshot(path=str(shot))
            if os.environ.get("UPDATE_SCREENSHOT") == "1":
                SCREENSHOT_DOC.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT_DOC)
        finally:
            browser.close()
