"""Heats and a final in a real Chromium: a spectator's page and the big screen, both open on
the final, show the final's draw (lanes and names) when the last heat's photo-finish file
lands in the watched folder; the timer's rounds desk uploads a file and lists its bad lines,
keeping what the timer is typing while the desk is redrawn."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from browser import WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from meetkit import entries, heat_rows, lif, meet_event
from server import Running, serve

from livetrack.domain.state import RaceState


def _state(srv: Running) -> RaceState:
    st: RaceState = srv.app.state.runtime.state  # type: ignore[attr-defined]
    return st


def _draw(srv: Running) -> None:
    r = httpx.post(
        srv.url + "/api/v1/rounds/b100/draw",
        json={"id": str(uuid.uuid4()), "round": "heats"},
        headers={"authorization": f"Bearer {srv.tokens['timer']}"},
    )
    r.raise_for_status()


def _drop(srv: Running, folder: Path, heat: int, base_ms: int) -> None:
    """The camera's PC writes a heat's file: whole, then renamed into the watched folder."""
    part = folder / f"heat{heat}.part"
    part.write_text(lif(heat, heat_rows(_state(srv), "heats", heat, base_ms)), "latin-1")
    part.rename(folder / f"007-1-{heat:02d}.lif")


async def _open(page_factory: PageFactory, url: str, width: int, height: int) -> object:
    page = await page_factory(width=width, height=height)
    await watch_sockets(page)
    await page.goto(url)  # type: ignore[attr-defined]
    await socket_open(page)
    return page


async def test_the_finals_draw_appears_when_the_last_heats_file_arrives(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    with serve(ev, tmp_path / "m.db", entries(ev), lif_dir=str(folder)) as srv:
        _draw(srv)
        rr = _state(srv).meet.get("b100")
        assert rr is not None
        _drop(srv, folder, 1, 14_000)
        _drop(srv, folder, 2, 14_050)
        phone = await _open(page_factory, srv.url + "/races/b100", 390, 844)
        screen = await _open(page_factory, srv.url + "/screen/b100", 1920, 1080)
        final = phone.locator('section.round[data-round="final"]')  # type: ignore[attr-defined]
        await final.get_by_text("Drawn as soon as every heat").wait_for(timeout=WAIT_MS)
        heat2 = phone.locator('section.round[data-round="heats"] .heat[data-heat="2"]')  # type: ignore[attr-defined]
        await heat2.locator(".q-big").first.wait_for(timeout=WAIT_MS)
        assert await final.locator("tr[data-bib]").count() == 0
        _drop(srv, folder, 3, 14_020)
        rows = final.locator("tbody tr[data-bib]")
        await rows.nth(7).wait_for(timeout=WAIT_MS)
        drawn = rr.state("final").draw
        assert drawn is not None
        names = {bib: _state(srv).runners[bib].name for bib, _ in drawn.heat(1)}
        shown = []
        for i in range(await rows.count()):
            row = rows.nth(i)
            shown.append(
                (await row.get_attribute("data-bib"), await row.get_attribute("data-lane"))
            )
            assert names[str(shown[-1][0])] in await row.inner_text()
        assert sorted(shown) == sorted((b, str(ln)) for b, ln in drawn.heat(1))
        heats = phone.locator('section.round[data-round="heats"]')  # type: ignore[attr-defined]
        assert await heats.locator(".q-big").count() == 6
        assert await heats.locator(".q-small").count() == 2
        await final.scroll_into_view_if_needed()
        await phone.screenshot(path=str(shot_path("rounds-race-final-drawn")), full_page=True)  # type: ignore[attr-defined]
        panel = screen.locator("#t-srounds-b100")  # type: ignore[attr-defined]
        await panel.get_by_text("Final · lanes").wait_for(timeout=WAIT_MS)
        for name in names.values():
            await panel.get_by_text(name, exact=False).first.wait_for(timeout=WAIT_MS)
        assert "HEATS · HEAT 3" in await panel.inner_text()  # upper case on the screen
        sizes = await screen.evaluate(  # type: ignore[attr-defined]
            "[document.documentElement.scrollHeight, document.documentElement.scrollWidth]"
        )
        assert sizes == [1080, 1920]
        await screen.screenshot(path=str(shot_path("rounds-screen-final-lanes")))  # type: ignore[attr-defined]


async def test_the_rounds_desk_uploads_a_file_and_lists_the_lines_left_out(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv:
        _draw(srv)
        page = await page_factory(width=1280, height=900)
        await page.goto(srv.url + "/signin#token=" + srv.tokens["timer"])  # type: ignore[attr-defined]
        await page.wait_for_url("**/timer", timeout=WAIT_MS)  # type: ignore[attr-defined]
        await page.goto(srv.url + "/timer/rounds")  # type: ignore[attr-defined]
        desk = page.locator("#t-rdesk-b100")  # type: ignore[attr-defined]
        await desk.get_by_text("Heats · heat 1").first.wait_for(timeout=WAIT_MS)
        rows = heat_rows(_state(srv), "heats", 1)
        text = lif(1, rows) + "4,555,9,Nobody,No,Club,0.00,,,\r\n"
        upload = tmp_path / "007-1-01.lif"
        upload.write_text(text, "latin-1")
        heat2 = desk.locator('form.hand-form[data-heat="2"] textarea')
        await heat2.fill("1, 102, 14.4")  # the timer is typing heat 2's hand times meanwhile
        await page.set_input_files("#lif-file", str(upload))  # type: ignore[attr-defined]
        await page.click("#lif-form button[type=submit]")  # type: ignore[attr-defined]
        report = page.locator("#lif-report")  # type: ignore[attr-defined]
        await report.get_by_text(f"{len(rows)} athletes stored for heats heat 1").wait_for(
            timeout=WAIT_MS
        )
        line = len(rows) + 2
        assert f"007-1-01.lif:{line}: a time of 0 is not a result" in await report.inner_text()
        await desk.get_by_text("result in (photo finish)").wait_for(timeout=WAIT_MS)
        assert await desk.locator('form.hand-form[data-heat="2"] textarea').input_value() == (
            "1, 102, 14.4"
        )  # the pushed redraw kept what was typed
        await page.screenshot(path=str(shot_path("rounds-desk-upload")), full_page=True)  # type: ignore[attr-defined]


async def test_an_athletes_page_follows_them_from_their_heat_lane_to_the_final_lane(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    with serve(ev, tmp_path / "m.db", entries(ev), lif_dir=str(folder)) as srv:
        _draw(srv)
        rr = _state(srv).meet.get("b100")
        assert rr is not None
        heats = rr.state("heats").draw
        assert heats is not None
        bib, lane = heats.heat(3)[0]  # first in heat 3's file: the heat's winner
        _drop(srv, folder, 1, 14_000)
        _drop(srv, folder, 2, 14_050)
        phone = await _open(page_factory, f"{srv.url}/runners/{bib}", 390, 844)
        card = phone.locator(f"#t-runner-{bib}")  # type: ignore[attr-defined]
        await card.get_by_text(f"Next: Heats · heat 3, lane {lane}.").wait_for(timeout=WAIT_MS)
        assert await card.get_by_text("Not seen on the course yet").count() == 0
        _drop(srv, folder, 3, 14_020)  # the last heat: the final is drawn, the page follows
        await card.locator(".rn-rounds .q-big").wait_for(timeout=WAIT_MS)
        final = rr.state("final").draw  # drawn with heat 3's result, in the same fold step
        assert final is not None
        final_lane = dict(final.heat(1))[bib]
        await card.get_by_text(f"Next: Final, lane {final_lane}.").wait_for(timeout=WAIT_MS)
        row = card.locator('.rn-rounds tr[data-round="heats"]')
        assert "1st" in await row.inner_text() and "14.02" in await row.inner_text()
        width = await phone.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        assert width == 390
        await phone.screenshot(path=str(shot_path("rounds-athlete-page")), full_page=True)  # type: ignore[attr-defined]


async def test_a_watched_file_that_imports_nothing_shows_on_the_timers_problems_panel(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    with serve(ev, tmp_path / "m.db", entries(ev), lif_dir=str(folder)) as srv:
        _draw(srv)
        page = await page_factory(width=1280, height=900)
        await page.goto(srv.url + "/signin#token=" + srv.tokens["timer"])  # type: ignore[attr-defined]
        await page.wait_for_url("**/timer", timeout=WAIT_MS)  # type: ignore[attr-defined]
        panel = page.locator("#t-problems")  # type: ignore[attr-defined]
        await panel.get_by_text("Nothing to look at.").wait_for(timeout=WAIT_MS)
        (folder / "009-1-04.lif").write_text("7,1,4,Heat 4,+0.1,m/s\n1,101,4,A,B,C,14.00\n")
        told = "nothing imported: 009-1-04.lif:1: unknown heat: Heats of Backward 100 m has 3"
        await panel.get_by_text(told).wait_for(timeout=WAIT_MS)
        await page.screenshot(path=str(shot_path("rounds-timer-problem-file")))  # type: ignore[attr-defined]
        (folder / "009-1-04.lif").unlink()  # the file taken away: the problem goes with it
        await panel.get_by_text("Nothing to look at.").wait_for(timeout=WAIT_MS)


async def test_a_sprinters_page_offers_no_where_i_stand_and_my_runners_drops_a_kept_spot(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    from factory import person

    ev = meet_event()
    with serve(ev, tmp_path / "m.db", [*entries(ev), person("1")]) as srv:
        page = await page_factory(width=390, height=844)
        # a road runner's page offers it (the script runs and fills the panel)
        await page.goto(f"{srv.url}/runners/1")  # type: ignore[attr-defined]
        await page.wait_for_function(  # type: ignore[attr-defined]
            "document.querySelectorAll('.stand select option').length > 2", timeout=WAIT_MS
        )
        assert await page.get_by_text("Where I stand").count() == 1  # type: ignore[attr-defined]
        # the sprinter's page does not
        await page.goto(f"{srv.url}/runners/101")  # type: ignore[attr-defined]
        await page.locator("#t-runner-101").wait_for(timeout=WAIT_MS)  # type: ignore[attr-defined]
        assert await page.locator(".stands, .stand").count() == 0  # type: ignore[attr-defined]
        assert await page.get_by_text("Where I stand").count() == 0  # type: ignore[attr-defined]
        await page.screenshot(path=str(shot_path("rounds-athlete-no-stand")), full_page=True)  # type: ignore[attr-defined]
        # "My runners" with a spot kept from before for the sprinter: it is dropped
        await page.evaluate(  # type: ignore[attr-defined]
            """() => {
              localStorage.setItem('livetrack.follow', JSON.stringify(['1', '101']));
              localStorage.setItem('livetrack.stand', JSON.stringify({
                '1': {checkpoint: 'half', lead_s: 180},
                '101': {checkpoint: 'finish', lead_s: 180}}));
            }"""
        )
        await page.goto(f"{srv.url}/me")  # type: ignore[attr-defined]
        # runners followed with no name known yet: the page learns their names and opens
        # itself again; what is checked below is the page as opened with them known
        await page.wait_for_function(  # type: ignore[attr-defined]
            "(() => { const n = JSON.parse(localStorage.getItem('livetrack.follow.names')"
            " || '{}'); return '1' in n && '101' in n; })()",
            timeout=WAIT_MS,
        )
        # it reloads itself the moment it has saved them: opening it now may meet that reload
        # on its way, which then carries on to the same page
        try:
            await page.goto(f"{srv.url}/me")  # type: ignore[attr-defined]
        except Exception as exc:  # playwright's Error, raised by the navigation that lost
            if "interrupted by another navigation" not in str(exc):
                raise
            await page.wait_for_load_state("load")  # type: ignore[attr-defined]
        await page.wait_for_function(  # type: ignore[attr-defined]
            "document.querySelectorAll(\"[data-stand-bib='1'] select option\").length > 2",
            timeout=WAIT_MS,
        )
        await page.wait_for_function(  # type: ignore[attr-defined]
            "!('101' in JSON.parse(localStorage.getItem('livetrack.stand')))", timeout=WAIT_MS
        )
        assert await page.locator("[data-stand-bib='101']").count() == 0  # type: ignore[attr-defined]
        assert await page.locator("[data-stand-bib='1']").count() == 1  # type: ignore[attr-defined]
        kept = await page.evaluate("JSON.parse(localStorage.getItem('livetrack.stand'))")  # type: ignore[attr-defined]
        assert kept == {"1": {"checkpoint": "half", "lead_s": 180}}


async def test_the_rounds_desk_asks_before_hand_times_replace_a_photo_finish_result(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv:
        _draw(srv)
        rows = heat_rows(_state(srv), "heats", 1)
        r = httpx.post(
            srv.url + "/api/v1/lif?name=007-1-01.lif",
            content=lif(1, rows).encode("latin-1"),
            headers={"authorization": f"Bearer {srv.tokens['timer']}"},
        )
        r.raise_for_status()
        await srv.asettle()
        rr = _state(srv).meet.get("b100")
        assert rr is not None and rr.results[("heats", 1)].source == "lif:007-1-01.lif"
        page = await page_factory(width=1280, height=900)
        await page.goto(srv.url + "/signin#token=" + srv.tokens["timer"])  # type: ignore[attr-defined]
        await page.wait_for_url("**/timer", timeout=WAIT_MS)  # type: ignore[attr-defined]
        await page.goto(srv.url + "/timer/rounds")  # type: ignore[attr-defined]
        desk = page.locator("#t-rdesk-b100")  # type: ignore[attr-defined]
        heat1 = desk.locator("details.desk-heat").filter(has_text="Heats · heat 1")
        await heat1.get_by_text("result in (photo finish)").wait_for(timeout=WAIT_MS)
        asked: list[str] = []
        answers = [False, True]  # first the timer keeps the photo finish, then replaces it

        async def on_dialog(dialog: object) -> None:
            asked.append(dialog.message)  # type: ignore[attr-defined]
            if answers.pop(0):
                await dialog.accept()  # type: ignore[attr-defined]
            else:
                await dialog.dismiss()  # type: ignore[attr-defined]

        page.on("dialog", on_dialog)  # type: ignore[attr-defined]
        await heat1.locator("summary").click()  # a heat with its result in is folded
        await heat1.get_by_text("hand times replace it only when you confirm").wait_for(
            timeout=WAIT_MS
        )
        lines = "\n".join(f"{p}, {b}, {t[:4]}" for p, b, _, t, _ in rows)
        await heat1.locator("form.hand-form textarea").fill(lines)
        await heat1.locator("form.hand-form button[type=submit]").click()
        report = page.locator("#lif-report")  # type: ignore[attr-defined]
        await report.get_by_text("hand times not stored").wait_for(timeout=WAIT_MS)
        assert len(asked) == 1 and "has a photo-finish result (007-1-01.lif)" in asked[0]
        await srv.asettle()
        assert rr.results[("heats", 1)].source == "lif:007-1-01.lif"  # kept
        await page.screenshot(path=str(shot_path("rounds-desk-hand-refused")), full_page=True)  # type: ignore[attr-defined]
        await heat1.locator("form.hand-form button[type=submit]").click()
        await report.get_by_text("the photo-finish result is replaced").wait_for(timeout=WAIT_MS)
        assert len(asked) == 2
        await heat1.get_by_text("result in (hand timed)").wait_for(timeout=WAIT_MS)
        assert rr.results[("heats", 1)].source == "hand"
