"""Fixtures for the browser tests: Debian's chromium, headless, driven by Playwright through
`executable_path` (Playwright downloads no browser; `scripts/dev.sh test` installs chromium).
Without chromium the tests skip, or fail with LIFELONG_REQUIRE_DEPLOY_TOOLS=1 (CI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

REQUIRE_TOOLS = os.environ.get("LIFELONG_REQUIRE_DEPLOY_TOOLS", "") not in ("", "0")


@pytest.fixture(scope="session")
def chromium():
    """A headless chromium (Playwright `Browser`) for the session."""
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (scripts/dev.sh test installs it)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason}; LIFELONG_REQUIRE_DEPLOY_TOOLS is set")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A page and what went wrong in it: console errors, uncaught exceptions, failed requests."""

    page: object
    problems: list[str] = field(default_factory=list)


@pytest.fixture
def open_tab(chromium) -> Iterator:
    """`open_tab(url, width=1280, height=900)`: a fresh page at `url`, watched for problems."""
    contexts = []

    def open_(url: str, width: int = 1280, height: int = 900) -> Tab:
        context = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        tab = Tab(context.new_page())
        page = tab.page
        page.on(
            "console",
            lambda m: tab.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: tab.problems.append(f"exception: {e}"))
        page.on("requestfailed", lambda r: tab.problems.append(f"failed: {r.url}"))
        page.on(
            "response",
            lambda r: tab.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )
        page.goto(url)
        return tab

    yield open_
    for context in contexts:
        context.close()
