"""Real headless Chromium through Playwright, for tests of pages as people see them.

Use the ``page_factory`` fixture: ``page = await page_factory(width=390, height=844)``.
Screenshots go to ``test-artifacts/`` (kept out of git) for a person to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import PATIENCE_S, REPO, unavailable
from pytest_asyncio import is_async_test

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


class _SharedBrowser:
    """One Chromium for the whole test session, launched on first use and again if it has
    gone (a crash fails the test that saw it, not every test after it). Launching Chromium is
    the dearest part of a page test; each test still gets contexts of its own (cookies,
    storage, service workers, caches), closed when it ends."""

    def __init__(self, chromium: str) -> None:
        self.chromium = chromium
        self._pw: Any = None
        self._manager: Any = None
        self._browser: Any = None

    async def get(self) -> Any:
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        if self._pw is None:
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                unavailable("playwright is not installed (pip install -e '.[test]')")
            self._manager = async_playwright()
            self._pw = await self._manager.start()
        self._browser = await self._pw.chromium.launch(
            executable_path=self.chromium, headless=True, args=CHROMIUM_ARGS
        )
        return self._browser

    async def close(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            await self._browser.close()
        if self._manager is not None:
            await self._manager.__aexit__(None, None, None)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_browser(chromium: str) -> AsyncIterator[_SharedBrowser]:
    shared = _SharedBrowser(chromium)
    try:
        yield shared
    finally:
        await shared.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser(shared_browser: _SharedBrowser) -> object:
    """The session's Chromium (tests using it run on the session's event loop: see
    :func:`pytest_collection_modifyitems`)."""
    return await shared_browser.get()


@pytest_asyncio.fixture(loop_scope="session")
async def page_factory(browser: Any) -> AsyncIterator[PageFactory]:
    """Pages, each in a fresh browser context of its own (nothing shared between tests)."""
    contexts: list[Any] = []

    async def make(width: int = 390, height: int = 844, **kw: object) -> object:
        ctx = await browser.new_context(viewport={"width": width, "height": height}, **kw)
        contexts.append(ctx)
        return await ctx.new_page()

    yield make
    for ctx in contexts:
        await ctx.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every test that uses the shared browser on the session's event loop, where the
    browser lives (Playwright objects belong to the loop that made them)."""
    mark = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if is_async_test(item) and "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(mark, append=False)


async def watch_sockets(page: object) -> None:
    """Before ``goto``: let :func:`socket_open` tell when the page's live socket is open."""
    await page.add_init_script(WATCH_SOCKETS)  # type: ignore[attr-defined]


async def socket_open(page: object, timeout: float = WAIT_MS) -> None:
    """Wait until the page's live socket is open (it then gets every update from now on)."""
    await page.wait_for_function("() => window.__wsOpen > 0", timeout=timeout)  # type: ignore[attr-defined]


def shot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
