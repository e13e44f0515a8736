"""The race page in a real Chromium at phone size: the leaderboard changes without reload."""

from __future__ import annotations

from pathlib import Path

import httpx
from browser import WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import serve


async def test_leaderboard_updates_live_without_reload(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace"), person("2", first_name="Bo")]
    with serve(event(), tmp_path / "log.db", people) as srv:
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        httpx.post(
            srv.url + "/api/v1/races/mile/gun",
            json={"time": GUN},
            headers=timer,
            timeout=PATIENCE_S,
        )
        page = await page_factory(width=390, height=844)
        await watch_sockets(page)
        await page.goto(srv.url + "/races/mile")  # type: ignore[attr-defined]
        await page.wait_for_function("() => window.htmx !== undefined")  # type: ignore[attr-defined]
        marker = await page.evaluate("() => { window.__same = 1; return 1 }")  # type: ignore[attr-defined]
        assert marker == 1
        await socket_open(page)
        read = {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 431_000}
        httpx.post(
            srv.url + "/api/v1/reads", json=[read], headers=reader, timeout=PATIENCE_S
        ).raise_for_status()
        board = page.locator("#t-board-mile-finish-all")  # type: ignore[attr-defined]
        await board.get_by_text("Ada Lovelace").wait_for(timeout=WAIT_MS)
        assert await page.evaluate("() => window.__same") == 1  # type: ignore[attr-defined]
        await page.screenshot(path=str(shot_path("race-phone")), full_page=True)  # type: ignore[attr-defined]
