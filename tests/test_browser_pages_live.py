"""The race's other live pages in a real Chromium: a team's board changes in place from small
frames; a page with JavaScript off still tells the truth about the race clock and its data's
age; every live page says when its data last changed and when the race or the socket has gone
quiet."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from browser import WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from factory import person
from server import serve
from test_browser_freshness import frames_of, gun, now_ms, post, snapshot_of, today_event
from test_browser_marshal import sign_in

from livetrack.domain.topics import dom_id
from livetrack.web.formats import team_topic

TEAM = "Salford Harriers"
PEOPLE = [
    person("1", first_name="Ada", last_name="Lovelace", team=TEAM),
    person("2", first_name="Grace", last_name="Hopper", team=TEAM),
    person("3", first_name="Alan", last_name="Turing", team=TEAM),
    person("4", first_name="Mary", last_name="Somerville", team="Sale Harriers"),
    person("5", first_name="Emmy", last_name="Noether", team="Sale Harriers"),
]
TEAM_PAGE = "/races/mile/teams/" + quote(TEAM, safe="")
BOARD = dom_id(team_topic("mile", TEAM))
KEPT = [BOARD, "t-tmm-mile-1", "t-tmm-mile-3", "t-teams-mile"]


async def test_a_team_board_updates_in_place_from_small_frames(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 600_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C1", "finish", start + 431_000)
        post(srv, "C4", "finish", start + 445_000)
        await srv.asettle()
        page = await page_factory(390, 844)
        await watch_sockets(page)
        frames = await frames_of(page)
        await page.goto(srv.url + TEAM_PAGE)
        await socket_open(page)
        grace = page.locator("#t-tmm-mile-2")
        await grace.wait_for(timeout=WAIT_MS)
        assert (await grace.locator("td.num").inner_text()) == "—"
        await snapshot_of(frames, BOARD)
        # mark the elements on the page: a region sent whole would replace them
        await page.evaluate(f"() => {KEPT}.forEach((id) => document.getElementById(id).__kept = 1)")
        regions = [BOARD, "t-teams-mile", "t-race-mile"]  # the page's live regions
        whole = await page.evaluate(
            "(ids) => ids.reduce((n, id) => n + document.getElementById(id).outerHTML.length, 0)",
            regions,
        )
        summary = page.locator(f"#{BOARD}-s")
        assert "1 of" in await summary.inner_text()
        seen = len(frames)
        post(srv, "C2", "finish", start + 470_000)  # Grace finishes: a second scorer
        await grace.locator("td.num", has_text="7:50").wait_for(timeout=WAIT_MS)
        kept = await page.evaluate(
            f"() => {KEPT}.map((id) => document.getElementById(id).__kept === 1)"
        )
        assert kept == [True] * len(KEPT)  # the board, and the rows that did not change
        assert "2 of" in await summary.inner_text()  # the team's line: a second scorer
        update = frames[seen:]
        assert update, "no frame came"
        sent = "".join(update)
        assert 'id="t-tmm-mile-1"' not in sent and 'id="t-tmm-mile-3"' not in sent
        assert 'id="t-tmm-mile-2"' in sent
        assert not [r for r in regions if f'id="{r}"' in sent]  # no region went whole
        assert len(sent) < whole / 2, (len(sent), whole)
        await page.screenshot(path=str(shot_path("pages-team-in-place-390")), full_page=True)


async def test_with_javascript_off_a_race_page_says_when_the_race_started(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 14 * 60_000 - 20_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C1", "finish", start + 431_000)
        post(srv, "C2", "half", now_ms() - 60_000)  # still running
        await srv.asettle()
        started = time.strftime("%H:%M", time.localtime(start / 1000))
        page = await page_factory(390, 844, java_script_enabled=False)
        for path, clock in (("/races/mile", "#t-race-mile-c"), ("/", "#t-rc-mile time")):
            await page.goto(srv.url + path)
            text = await page.locator(clock).inner_text()
            if path == "/races/mile":
                await page.screenshot(path=str(shot_path("pages-nojs-race-390")), full_page=True)
            # event time is Europe/London: compare the minutes past the hour and the wording
            assert re.fullmatch(r"started \d\d:\d\d, 14 min before this page loaded", text), text
            assert text[8:13].endswith(started[-2:]), (text, started)
            fresh = await page.locator("#fresh").inner_text()
            assert re.fullmatch(r"Updated at \d\d:\d\d:\d\d", fresh), fresh
            assert "reload it for the latest" in await page.locator("main").inner_text()


async def _quiet_notice(page: Any) -> str:
    """Four minutes pass on the phone with nothing sent: what the page's notice says."""
    stale = page.locator("#stale")
    await page.clock.run_for(3_000)
    assert await stale.is_hidden()
    await page.clock.fast_forward(240_000)
    await page.clock.run_for(2_000)
    await stale.wait_for(state="visible", timeout=WAIT_MS)
    return str(await stale.inner_text())


async def test_every_live_page_says_how_fresh_it_is_and_when_the_race_goes_quiet(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 300_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C1", "half", start + 200_000)
        await srv.asettle()
        for path in (
            TEAM_PAGE,
            "/races/mile/teams",
            "/races/mile/charity",
            "/runners/2",
            "/races/mile/map",
            "/",
            "/screen/mile",
        ):
            page = await page_factory(390, 844)
            await watch_sockets(page)
            await page.clock.install()
            await page.goto(srv.url + path)
            await socket_open(page)
            assert "Updated" in await page.locator("#fresh").inner_text(), path
            text = await _quiet_notice(page)
            assert re.search(r"No new times for [4-9] min — timing may be delayed", text), (
                path,
                text,
            )
            if path == TEAM_PAGE:
                await page.screenshot(path=str(shot_path("pages-team-quiet-390")), full_page=True)
            await page.context.close()

        # the staff pages: the marshal's lists and the timer's panels are drawn again every
        # few seconds, which is not news; they say when the data last changed all the same
        staff = ((srv.tokens["marshal:half"], "/marshal"), (srv.tokens["timer"], "/timer"))
        for token, path in staff:
            page = await page_factory(390, 844)
            await watch_sockets(page)
            await page.clock.install()
            await sign_in(page, srv.url, token, path)
            await socket_open(page)
            await page.locator("[data-changed]:not(#fresh)").first.wait_for(
                state="attached", timeout=WAIT_MS
            )
            text = await _quiet_notice(page)
            assert re.search(r"No new times for [4-9] min — timing may be delayed", text), (
                path,
                text,
            )
            await page.wait_for_timeout(2_500)  # the panels come again, with no news in them
            await page.clock.run_for(1_000)
            fresh = await page.locator("#fresh").inner_text()
            assert re.fullmatch(r"Updated [4-9] min ago", fresh), (path, fresh)
            await page.screenshot(path=str(shot_path(f"pages-staff{path.replace('/', '-')}-390")))
            await page.context.close()

        # the results page is not live: it says so, and how old its data is
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/results/mile")
        assert "reload it for the latest" in await page.locator("main").inner_text()
        assert "Updated" in await page.locator("#fresh").inner_text()


async def test_a_team_page_says_so_when_its_socket_is_down(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 300_000
    page = await page_factory(390, 844)
    await watch_sockets(page)
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        await srv.asettle()
        await page.goto(srv.url + TEAM_PAGE)
        await socket_open(page)
    # the server is gone: the badge at once, and after a few seconds the notice in words
    await page.locator("#conn").wait_for(state="visible", timeout=WAIT_MS)
    stale = page.locator("#stale")
    await stale.wait_for(state="visible", timeout=WAIT_MS)
    assert "Not connected — reconnecting" in await stale.inner_text()
    await page.screenshot(path=str(shot_path("pages-team-down-390")), full_page=True)
