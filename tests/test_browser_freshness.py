"""A phone's data and its honesty, in a real Chromium: rows updated in place, clocks that tick
with no frame arriving, a plain notice when times stop coming, and a layout for one thumb."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from conftest import PATIENCE_S
from factory import EVENT_TOML, person
from server import Running, serve

from livetrack.domain.event import Event, load_event_text

PEOPLE = [
    person("1", first_name="Ada", last_name="Lovelace", club="Salford Harriers"),
    person("2", first_name="Grace", last_name="Hopper", club="Sale Harriers"),
    person("3", first_name="Alan", last_name="Turing", club="Manchester Athletic Club"),
    person("4", first_name="Mary", last_name="Somerville", club="Stockport Harriers"),
]


def today_event() -> Event:
    """The test event, held today: guns and passings near now are in its window."""
    text = re.sub(r'(?m)^date = "[0-9-]+"', f'date = "{date.today().isoformat()}"', EVENT_TOML)
    return load_event_text(text)


def now_ms() -> int:
    return int(time.time() * 1000)


def gun(srv: Running, at: int) -> None:
    headers = {"authorization": f"Bearer {srv.tokens['timer']}"}
    r = httpx.post(
        srv.url + "/api/v1/races/mile/gun", json={"time": at}, headers=headers, timeout=PATIENCE_S
    )
    r.raise_for_status()


def post(srv: Running, chip: str, point: str, at: int) -> None:
    headers = {"authorization": f"Bearer {srv.tokens['reader']}"}
    body = [{"reader": "r1", "point": point, "chip": chip, "time": at}]
    r = httpx.post(srv.url + "/api/v1/reads", json=body, headers=headers, timeout=PATIENCE_S)
    r.raise_for_status()


async def frames_of(page: Any) -> list[str]:
    """Before ``goto``: every websocket message the page receives, as its text."""
    got: list[str] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: got.append(str(payload)))

    page.on("websocket", on_socket)
    return got


async def snapshot_of(frames: list[str], region: str) -> None:
    """Wait until the new socket's first snapshot, which replaces every region whole (here
    ``region``), has come: only then can a test mark what a later patch must keep."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not any(f'id="{region}"' in f for f in frames):
        assert time.monotonic() < deadline, "no snapshot came on the new socket"
        await asyncio.sleep(0.05)


async def test_a_board_updates_in_place_row_by_row(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 600_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C2", "finish", start + 431_000)
        post(srv, "C3", "finish", start + 470_000)
        await srv.asettle()
        page = await page_factory(390, 844)
        await watch_sockets(page)
        frames = await frames_of(page)
        await page.goto(srv.url + "/races/mile")
        await socket_open(page)
        rows = page.locator("#t-board-mile-finish-all tbody tr")
        await rows.nth(1).wait_for(timeout=WAIT_MS)
        await snapshot_of(frames, "t-board-mile-finish-all")
        # mark the elements on the page: a region replaced whole would lose the marks
        await page.evaluate(
            """() => {
              for (const id of ["t-board-mile-finish-all", "t-row-finish-2", "t-row-finish-3",
                                "t-feed-mile"]) document.getElementById(id).__kept = true;
            }"""
        )
        seen = len(frames)
        post(srv, "C1", "finish", start + 445_000)  # Ada finishes between Grace and Alan
        await page.locator("#t-row-finish-1").wait_for(timeout=WAIT_MS)
        names = await rows.locator("td:nth-child(2) a").all_inner_texts()
        assert names == ["Grace Hopper", "Ada Lovelace", "Alan Turing"]
        kept = await page.evaluate(
            """() => ["t-board-mile-finish-all", "t-row-finish-2", "t-row-finish-3",
                      "t-feed-mile"].map((id) => document.getElementById(id).__kept === true)"""
        )
        # the region, the feed and both rows already there are the same elements: Alan's
        # position (third now) is worked out by the page from the rows' order
        assert kept == [True, True, True, True]
        # of the board only Ada's row went, placed after Grace's
        update = "".join(frames[seen:])
        assert '<template data-p="after:t-row-finish-2"><tr id="t-row-finish-1"' in update
        assert 'id="t-row-finish-2"' not in update and 'id="t-row-finish-3"' not in update
        assert 'id="t-board-mile-finish-all"' not in update
        positions = await rows.locator("td.pos").all_inner_texts()
        gaps = await rows.locator("td.gap").all_inner_texts()
        assert positions == ["1", "2", "3"] and gaps == ["", "+0:14", "+0:39"]
        feed = page.locator("#t-feed-mile li")  # the latest finish times first
        assert await feed.locator("a").all_inner_texts() == [
            "Alan Turing",
            "Ada Lovelace",
            "Grace Hopper",
        ]
        await page.screenshot(path=str(shot_path("diet-race-board-390")), full_page=True)


async def test_clocks_tick_with_no_frames_arriving(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 65_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        await srv.asettle()
        for path, clock in (("/races/mile", "#t-race-mile-c"), ("/", "#t-rc-mile time")):
            page = await page_factory(360, 780)
            await watch_sockets(page)
            frames = await frames_of(page)
            await page.goto(srv.url + path)
            await socket_open(page)
            await page.wait_for_timeout(500)
            before, count = await page.locator(clock).inner_text(), len(frames)
            assert re.fullmatch(r"1:0[5-9]|1:[1-5][0-9]", before), before
            await page.wait_for_timeout(2500)
            after = await page.locator(clock).inner_text()
            assert after != before  # it ticked...
            assert len(frames) == count  # ...with nothing sent
            assert "Updated" in await page.locator("#fresh").inner_text()
        await page.screenshot(path=str(shot_path("diet-home-360")), full_page=True)


async def test_a_plain_notice_appears_when_times_stop_coming(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 240_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C2", "half", start + 200_000)
        await srv.asettle()
        page = await page_factory(390, 844)
        await watch_sockets(page)
        await page.clock.install()  # the page's own clock, which the test moves on
        await page.goto(srv.url + "/races/mile?point=half")
        await socket_open(page)
        stale = page.locator("#stale")
        await page.clock.run_for(5_000)
        assert await stale.is_hidden()
        # the server sends nothing more; four minutes pass on the phone
        await page.clock.fast_forward(240_000)
        await page.clock.run_for(2_000)
        await stale.wait_for(state="visible", timeout=WAIT_MS)
        text = await stale.inner_text()
        assert re.search(r"No new times for [4-9] min — timing may be delayed", text), text
        assert "min ago" in await page.locator("#fresh").inner_text()
        await page.screenshot(path=str(shot_path("diet-race-delayed-390")), full_page=True)
        post(srv, "C1", "half", now_ms())  # times come again: the notice goes
        await page.locator("#t-row-half-1").wait_for(timeout=WAIT_MS)
        await page.clock.run_for(2_000)
        assert await stale.is_hidden()
        assert "just now" in await page.locator("#fresh").inner_text()


async def test_a_runner_card_says_where_they_were_last_seen_and_counts_down(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 480_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        for chip, half, finish in (("C2", 200, 431), ("C3", 205, 440), ("C4", 210, 450)):
            post(srv, chip, "half", start + half * 1000)
            post(srv, chip, "finish", start + finish * 1000)
        post(srv, "C1", "half", start + 400_000)  # Ada, slower, passed halfway 80 s ago
        await srv.asettle()
        page = await page_factory(360, 780)
        await watch_sockets(page)
        await page.clock.install()
        await page.goto(srv.url + "/runners/1")
        await socket_open(page)
        card = page.locator("#t-runner-1")
        seen = await card.locator(".seen").inner_text()
        assert re.search(r"Last seen at Halfway, \d\d:\d\d \(1 min ago\)", seen), seen
        due = card.locator(".due")
        first = await due.inner_text()
        minutes = int(re.search(r"in ~(\d+) min", first).group(1))  # type: ignore[union-attr]
        await page.screenshot(path=str(shot_path("diet-runner-360")), full_page=True)
        await page.clock.fast_forward(60_000)
        await page.clock.run_for(1_000)
        later = await due.inner_text()
        assert f"in ~{minutes - 1} min" in later or "any moment now" in later, later
        assert "(2 min ago)" in await card.locator(".seen").inner_text()
        await page.clock.fast_forward(20 * 60_000)  # long past the top of the range
        await page.clock.run_for(1_000)
        assert "not seen yet" in await due.inner_text()


async def test_results_fit_a_360_px_phone_and_every_tap_target_is_44_px(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    start = now_ms() - 600_000
    with serve(today_event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        for i, chip in enumerate(("C1", "C2", "C3", "C4")):
            post(srv, chip, "half", start + (200 + i) * 1000)
            post(srv, chip, "finish", start + (431 + 9 * i) * 1000)
        await srv.asettle()
        page = await page_factory(360, 780)
        await page.goto(srv.url + "/results/mile")
        wide = await page.evaluate("() => document.scrollingElement.scrollWidth")
        assert wide <= 360
        table = page.locator(".results-table")
        assert await page.evaluate(
            "() => { const w = document.querySelector('.table-wrap');"
            " return w.scrollWidth <= w.clientWidth; }"
        )
        first = table.locator("tbody tr").first
        for cell in ("td.pos", "td.name", "td.num"):
            box = await first.locator(cell).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, cell
        assert "Ada Lovelace" in await first.inner_text()
        await page.screenshot(path=str(shot_path("diet-results-360")), full_page=True)
        for path in ("/results/mile", "/races/mile", "/runners/1", "/"):
            await page.goto(srv.url + path, wait_until="networkidle")  # its scripts' fetches
            small = await page.evaluate(
                """() => [...document.querySelectorAll("a, button, input, select")]
                  .filter((el) => el.offsetParent !== null)
                  .map((el) => [el.textContent.trim() || el.id, el.getBoundingClientRect()])
                  .filter(([, r]) => r.height < 44 || r.width < 44)
                  .map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)"""
            )
            assert small == [], f"{path}: {small}"
        await page.goto(srv.url + "/races/mile")
        await page.screenshot(path=str(shot_path("diet-race-360")), full_page=True)
