"""`raftsim run --html`: the timeline of a scenario opens in a real browser, cleanly, with
one lane per server (raftsim.viz.html marks each with ``data-lane="<id>"``)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftsim.scenario.command import RunOptions, run_command

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which(
    "chromium")
NO_CHROMIUM = "Chromium is not installed (apt-get install chromium)"


PAGES = {"tour": ["s1", "s2", "s3", "s4", "s5"],
         "add-nonvoter": ["s1", "s2", "s3", "s4"]}  # s4 joins during the run: a lane too


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The timelines, written by ``raftsim run --html`` before any browser starts
    (Playwright's sync API keeps an event loop running in this thread)."""
    directory = tmp_path_factory.mktemp("timelines")
    written = {}
    for name in PAGES:
        path = directory / f"{name}.html"
        out, err = io.StringIO(), io.StringIO()
        code = run_command(RunOptions(files=[str(SCENARIOS / f"{name}.toml")], quiet=True,
                                      html=str(path)), out, err)
        assert (code, err.getvalue()) == (0, "")
        written[name] = path
    return written


@pytest.fixture(scope="module")
def browser(pages: dict[str, Path]) -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        yield browser
        browser.close()


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
@pytest.mark.parametrize("name", list(PAGES))
def test_html_timeline_opens_without_errors(browser: Any, pages: dict[str, Path],
                                            name: str) -> None:
    servers = PAGES[name]
    page_path = pages[name]
    errors: list[str] = []
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("console", lambda msg: errors.append(f"{msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("request", lambda req: requests.append(req.url))
    try:
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        for sid in servers:
            assert page.locator(f'[data-lane="{sid}"]').count() == 1, sid
        assert page.locator("[data-lane]").count() == len(servers)
        assert page.locator("h1").first.inner_text().strip() != ""
        verdict = page.locator(".rs-verdict")
        assert verdict.get_attribute("data-passed") == "1"
        assert verdict.inner_text().startswith(f"PASS {name}: ")
        # the narration lists the scenario's own explanations
        assert page.locator("#rs-story-list li").count() > 10
    finally:
        page.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
