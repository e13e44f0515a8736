"""Real headless Chromium through Playwright, for tests of pages as people see them.

Use the ``page_factory`` fixture: ``page = await page_factory(width=390, height=844)``.
Screenshots go to ``test-artifacts/`` (kept out of git) for a person to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import REPO, unavailable

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

PageFactory = Callable[..., Awaitable[object]]


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[object]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page_factory(browser: object) -> AsyncIterator[PageFactory]:
    contexts: list[object] = []

    async def make(width: int = 390, height: int = 844, **kw: object) -> object:
        ctx = await browser.new_context(viewport={"width": width, "height": height}, **kw)  # type: ignore[attr-defined]
        contexts.append(ctx)
        return await ctx.new_page()

    yield make
    for ctx in contexts:
        await ctx.close()  # type: ignore[attr-defined]


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
