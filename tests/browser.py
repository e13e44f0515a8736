"""Real headless Chromium through Playwright, for tests of pages as people see them.

Use the ``page_factory`` fixture: ``page = await page_factory(width=390, height=844)``.
Screenshots go to ``test-artifacts/`` (kept out of git) for a person to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import PATIENCE_S, REPO, unavailable

ARTIFACTS = REPO / "test-artifacts"
#: Playwright timeouts (ms) for what a page should show at once on an idle machine.
WAIT_MS = int(PATIENCE_S * 1000)
#: For a page to reconnect by itself after a server restart: htmx's websocket extension waits
#: a random delay of up to 2^n seconds before its n-th retry, so a restart that takes a few
#: seconds on a loaded machine can leave the page waiting a good while before it tries again.
RECONNECT_MS = 3 * WAIT_MS
#: Counts the page's live sockets opening (``window.__wsOpen``; 0 again once one closes).
WATCH_SOCKETS = """
document.addEventListener("htmx:wsOpen", () => { window.__wsOpen = (window.__wsOpen || 0) + 1; });
document.addEventListener("htmx:wsClose", () => { window.__wsOpen = 0; });
"""
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


async def watch_sockets(page: object) -> None:
    """Before ``goto``: let :func:`socket_open` tell when the page's live socket is open."""
    await page.add_init_script(WATCH_SOCKETS)  # type: ignore[attr-defined]


async def socket_open(page: object, timeout: float = WAIT_MS) -> None:
    """Wait until the page's live socket is open (it then gets every update from now on)."""
    await page.wait_for_function("() => window.__wsOpen > 0", timeout=timeout)  # type: ignore[attr-defined]


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
