"""The obstacle course in a real Chromium: a marshal at the wall judges a runner "failed" on
the phone, and the leaderboard open in another page re-ranks by final time, penalty shown."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from obstacle_event import event_today, person
from server import serve, tokens_for


async def test_a_failed_judgement_on_the_marshals_phone_reranks_the_open_leaderboard(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [person(b, first_name=f"Runner{b}") for b in ("1", "2", "3")]
    toks = tokens_for(("wall", "net"))
    with (
        serve(event_today(), tmp_path / "log.db", people, tokens=toks) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        gun = int(time.time() * 1000) - 10 * 60_000
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        http.post("/api/v1/races/ocr/gun", json={"time": gun}, headers=timer)
        reads = []
        for i, bib in enumerate(("1", "2", "3")):
            for point, at_s in (("wall", 100 + i), ("finish", 300 + 10 * i)):
                reads.append({"reader": "r1", "point": point, "chip": f"C{bib}",
                              "time": gun + at_s * 1000, "seq": None})  # fmt: skip
        answer = http.post(
            "/api/v1/reads", json=reads, headers={"authorization": f"Bearer {srv.tokens['reader']}"}
        )
        assert answer.status_code == 200, answer.text

        board: Any = await page_factory(width=1024, height=700)
        await board.goto(f"{srv.url}/races/ocr?point=finish")
        rows = board.locator("#t-board-ocr-finish-all tbody tr")
        await rows.first.get_by_text("Runner1").wait_for(timeout=WAIT_MS)
        assert [await r.locator("a").text_content() for r in await rows.all()] == [
            "Runner1 Last1",
            "Runner2 Last2",
            "Runner3 Last3",
        ]

        phone: Any = await page_factory(width=390, height=844)
        await phone.goto(f"{srv.url}/signin#token={srv.tokens['marshal:wall']}")
        await phone.wait_for_url(f"{srv.url}/marshal", timeout=WAIT_MS)
        await phone.locator("#judge-panel").get_by_text("The Wall").wait_for(timeout=WAIT_MS)
        assert await phone.locator('[data-cost="failed"]').text_content() == "+0:30"
        failed = phone.locator('#t-marshal-wall [data-judge="1"][data-outcome="failed"]')
        await failed.click(timeout=WAIT_MS)
        await phone.locator("#queue").get_by_text("All sent").wait_for(timeout=WAIT_MS)
        await phone.locator('#t-marshal-wall [data-judge="1"][aria-pressed="true"]').wait_for(
            timeout=WAIT_MS
        )
        assert await phone.locator("#recent li .what").first.text_content() == "#1 failed"
        await phone.screenshot(path=str(shot_path("obstacle-marshal-phone")), full_page=True)

        # the board re-ranks live: 1 drops behind 2 and 3 with 5:00 + 0:30 = 5:30
        last = rows.nth(2)
        await last.get_by_text("Runner1").wait_for(timeout=WAIT_MS)
        await last.locator(".penalty").get_by_text("5:00 +0:30 pen").wait_for(timeout=WAIT_MS)
        assert await last.locator("td.num").first.inner_text() == "5:30\n5:00 +0:30 pen"
        # places, with the moves since the wall (where the order was 1, 2, 3)
        places = [await r.locator("td.pos").inner_text() for r in await rows.all()]
        assert places == ["1▲1", "2▲1", "3▼2"]
        assert [await r.locator("a").text_content() for r in await rows.all()] == [
            "Runner2 Last2",
            "Runner3 Last3",
            "Runner1 Last1",
        ]
        await board.screenshot(path=str(shot_path("obstacle-leaderboard")), full_page=True)

        screen: Any = await page_factory(width=1920, height=1080)
        await screen.goto(f"{srv.url}/screen/ocr?panels=feed,board")
        await screen.locator(".sfeed .spen").get_by_text("+0:30 pen").wait_for(timeout=WAIT_MS)
        await screen.screenshot(path=str(shot_path("obstacle-big-screen")))

        results: Any = await page_factory(width=1024, height=600)
        await results.goto(f"{srv.url}/results/ocr")
        row = results.locator(".results-table tbody tr").nth(2)
        assert await row.locator(".penalty").inner_text() == "+0:00:30\nThe Wall failed +0:30"
        await results.screenshot(path=str(shot_path("obstacle-results")), full_page=True)

        # a phone: the board and the results show the penalty without sideways scrolling
        phone_board: Any = await page_factory(width=390, height=844)
        await phone_board.goto(f"{srv.url}/races/ocr?point=finish")
        penalised = phone_board.locator("#t-board-ocr-finish-all tbody tr").nth(2)
        await penalised.locator(".penalty").get_by_text("+0:30 pen").wait_for(timeout=WAIT_MS)
        for page, table in ((phone_board, "#t-board-ocr-finish-all table"), (None, "")):
            if page is None:
                page = await page_factory(width=390, height=844)
                await page.goto(f"{srv.url}/results/ocr")
                table = ".results-table"
            box = await page.locator(table).first.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 390, box
            pen = await page.locator(f"{table} .penalty").first.bounding_box()
            assert pen is not None and pen["x"] + pen["width"] <= 390, pen
        await phone_board.screenshot(path=str(shot_path("obstacle-board-phone")), full_page=True)
