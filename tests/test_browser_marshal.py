"""The marshal's page in a real Chromium at phone size: sign-in by link, typing without signal,
and exactly-once delivery with the original times when the signal returns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from factory import event, event_today, person
from server import serve


async def sign_in(page: Any, url: str, token: str, lands_on: str) -> None:
    await page.goto(f"{url}/signin#token={token}")
    await page.wait_for_url(f"{url}{lands_on}", timeout=WAIT_MS)
    assert token not in page.url


async def test_marshal_offline_entries_arrive_once_with_their_original_times(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    bibs = ["11", "12", "13", "14", "15"]
    people = [person(b, first_name=f"Runner{b}") for b in bibs]
    with (
        serve(event_today(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        gun_at = int(time.time() * 1000) - 10 * 60_000
        http.post("/api/v1/races/mile/gun", json={"time": gun_at}, headers=timer)
        page: Any = await page_factory(width=390, height=844)
        await sign_in(page, srv.url, srv.tokens["marshal:half"], "/marshal")
        await page.locator("#t-marshal-half h2", has_text="Overdue").wait_for(timeout=WAIT_MS)
        assert await page.locator("#who-point").text_content() == "Halfway"
        assert srv.tokens["marshal:half"] not in await page.evaluate("() => location.href")

        await page.context.set_offline(True)
        for bib in bibs:
            for digit in bib:
                await page.locator(f'.key[data-key="{digit}"]').click()
            await page.locator("#submit").click()
            await page.wait_for_timeout(40)  # each entry gets a time of its own
        await page.locator("#queue").get_by_text("5 waiting to send").wait_for(timeout=WAIT_MS)
        assert await page.locator("#queue").text_content() == "5 waiting to send"
        queued = await page.evaluate("() => JSON.parse(localStorage.getItem('livetrack.queue'))")
        typed = {q["body"][0]["bib"]: q["body"][0]["time"] for q in queued}
        assert list(typed) == bibs
        assert len(set(typed.values())) == 5
        await page.screenshot(path=str(shot_path("marshal-offline-phone")), full_page=False)
        for bib in bibs:  # nothing reached the server while offline
            assert "source" not in http.get(f"/api/v1/runners/{bib}").json()["splits"][1]

        await page.context.set_offline(False)
        await page.locator("#queue").get_by_text("All sent").wait_for(timeout=WAIT_MS)
        for bib in bibs:
            split = http.get(f"/api/v1/runners/{bib}").json()["splits"][1]
            assert split["source"] == "manual" and split["time_ms"] == typed[bib]
            history = http.get(f"/api/v1/history/{bib}", headers=timer).text
            assert history.count("seen at half") == 1
        passed = page.locator("#t-marshal-half .passed")
        await passed.get_by_text("Runner15").wait_for(timeout=WAIT_MS)
        await page.screenshot(path=str(shot_path("marshal-phone")), full_page=True)

        # undo the last entry: the sighting is cancelled by a correction, not deleted
        await page.locator("#recent li").first.get_by_role("button", name="Undo").click()
        await page.locator("#queue").get_by_text("All sent").wait_for(timeout=WAIT_MS)
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            if "source" not in http.get("/api/v1/runners/15").json()["splits"][1]:
                break
            await page.wait_for_timeout(50)
        assert "source" not in http.get("/api/v1/runners/15").json()["splits"][1]
        assert "undo sighting:" in http.get("/api/v1/history/15", headers=timer).text


async def test_signin_without_a_valid_token_says_so(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        page: Any = await page_factory(width=390, height=844)
        await page.goto(f"{srv.url}/signin#token=lt_wrong")
        await page.get_by_text("not valid").wait_for(timeout=WAIT_MS)
        assert "#token" not in page.url
        await page.goto(f"{srv.url}/marshal")
        await page.get_by_text("not signed in").wait_for(timeout=WAIT_MS)
