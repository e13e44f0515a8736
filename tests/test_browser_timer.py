"""The timer's console in a real Chromium: a correction made there moves a runner on a
spectator's open race page, the start gun needs a second, confirming press, and a decoder's
link (and its loss) shows beside its reader."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from factory import EVENT_TOML, GUN, event, person
from server import serve

from livetrack.domain.event import load_event_text
from livetrack.ingest.decoders.simulate import DecoderSimulator, make_demo_reads


async def test_a_correction_on_the_console_moves_a_runner_on_the_spectators_page(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [
        person("1", first_name="Ada", last_name="Lovelace"),
        person("2", first_name="Bo", last_name="Diddley"),
        person("3", chips=()),
    ]
    with (
        serve(event(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        reads = [
            {"reader": "r1", "point": "half", "chip": "C1", "time": GUN + 210_000},
            {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 430_000},
            {"reader": "r1", "point": "finish", "chip": "C2", "time": GUN + 440_000},
            {"reader": "r1", "point": "finish", "chip": "LOST9", "time": GUN + 450_000},
        ]
        http.post("/api/v1/reads", json=reads, headers=reader).raise_for_status()

        fan: Any = await page_factory(width=390, height=844)
        await fan.goto(srv.url + "/races/mile")
        rows = fan.locator("#t-board-mile-finish-all tbody tr")
        await rows.nth(1).get_by_text("Bo Diddley").wait_for(timeout=WAIT_MS)

        console: Any = await page_factory(width=1280, height=800)
        await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
        await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
        await console.locator("#t-announce").get_by_text("Bo Diddley").wait_for(timeout=WAIT_MS)
        await console.locator("#t-unmatched").get_by_text("LOST9").wait_for(timeout=WAIT_MS)
        await console.locator("#t-readers").get_by_text("receiving").first.wait_for(timeout=WAIT_MS)
        await console.screenshot(path=str(shot_path("timer-desktop")), full_page=False)

        await console.locator("#lookup-bib").fill("2")
        await console.locator("#lookup button").click()
        history = console.locator("#history .history")
        await history.wait_for(timeout=WAIT_MS)
        await history.locator(".reason-input").fill("photo finish shows Bo first")
        finish = history.locator('tr[data-point="finish"]')
        await finish.locator("input[type=time]").fill("10:07:05")
        await finish.locator('[data-fix="edit"]').click()

        await rows.nth(0).get_by_text("Bo Diddley").wait_for(timeout=WAIT_MS)
        await rows.nth(1).get_by_text("Ada Lovelace").wait_for(timeout=WAIT_MS)
        audit = console.locator("#history .audit")
        await audit.get_by_text("photo finish shows Bo first").wait_for(timeout=WAIT_MS)
        assert "test timer" in await audit.inner_text()

        # the unmatched chip goes to bib 3, whose earlier finish read then counts
        form = console.locator('#t-unmatched form[data-chip="LOST9"]')
        await form.locator("input").fill("3")
        await form.locator("button").click()
        await rows.nth(2).get_by_text("First3 Last3").wait_for(timeout=WAIT_MS)
        await (
            console.locator("#t-unmatched").get_by_text("Every chip read").wait_for(timeout=WAIT_MS)
        )
        await console.screenshot(path=str(shot_path("timer-desktop-after")), full_page=True)
        await fan.screenshot(path=str(shot_path("race-after-correction-phone")), full_page=True)


async def test_the_start_gun_fires_only_on_the_confirming_second_press(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    # the gun fires now, so the event is today's (a gun far from the event's day is refused)
    today = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    ev = load_event_text(EVENT_TOML.replace('date = "2026-06-14"', f'date = "{today}"'))
    with serve(ev, tmp_path / "log.db", [person("1", race="loop")]) as srv:
        console: Any = await page_factory(width=1280, height=800)
        await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
        await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
        start = console.locator('.gun-actions[data-race="loop"] [data-gun]')
        await start.click()
        # the first press arms the button (for 5 s); give a wrongly fired gun time to show
        armed = console.locator('.gun-actions[data-race="loop"] [data-gun][data-armed]')
        await armed.wait_for(timeout=WAIT_MS)
        await console.wait_for_timeout(1500)
        assert "in use" not in await console.locator("#t-guns").inner_text()
        await start.click()
        race = console.locator("#t-guns .race-guns", has_text="Two laps")
        await race.get_by_text("in use").wait_for(timeout=WAIT_MS)
        assert "running" in (await race.inner_text()).lower()


async def test_the_console_shows_a_decoders_link_and_its_loss(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    reads = make_demo_reads("raceresult", 5, start_ms=GUN, gun=False)
    sim = DecoderSimulator("raceresult", reads, tz=event().tz, interval_s=0.01)
    port = await sim.start()
    ev = load_event_text(
        EVENT_TOML + f'\n[[reader]]\nid = "rr-finish"\nprotocol = "raceresult"\n'
        f'point = "finish"\nhost = "127.0.0.1"\nport = {port}\n'
    )
    try:
        with (
            serve(ev, tmp_path / "log.db", [person("1")]) as srv,
            httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
        ):
            assert http.get("/api/v1/readers").status_code == 401
            marshal = {"authorization": f"Bearer {srv.tokens['marshal:half']}"}
            assert http.get("/api/v1/readers", headers=marshal).status_code == 403
            answer = http.get(
                "/api/v1/readers", headers={"authorization": f"Bearer {srv.tokens['timer']}"}
            ).json()
            assert answer["leading"] is True  # one process: it runs the readers
            assert [h["reader"] for h in answer["readers"]] == ["rr-finish"]

            console: Any = await page_factory(width=1280, height=800)
            await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
            await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
            row = console.locator('#t-readers tr[data-reader="rr-finish"]')
            await row.get_by_text("link: connected").wait_for(timeout=WAIT_MS)
            await sim.close()  # the decoder goes away (power, cable)
            await row.locator(".link-connected").wait_for(state="detached", timeout=WAIT_MS)
            text = await row.locator("[data-link]").inner_text()
            assert text.startswith("link: ") and text != "link: connected", text
            await console.screenshot(path=str(shot_path("timer-decoder-lost")), full_page=False)
    finally:
        await sim.close()
