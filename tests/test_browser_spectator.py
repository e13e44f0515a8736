"""Spectators' pages in a real Chromium at phone size (390×844 and 360 wide)."""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

import httpx
from browser import RECONNECT_MS, WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from conftest import PATIENCE_S
from factory import GUN, event, event_today, person
from server import Running, serve, tokens_for

PEOPLE = [
    person("1", first_name="Ada", last_name="Lovelace", club="Salford Harriers"),
    person("2", first_name="Grace", last_name="Hopper", club="Sale Harriers"),
    person("3", first_name="<script>alert(1)</script>", last_name="X"),
    person("4", first_name="Secret", last_name="Runner", hide_name=True),
]


def gun(srv: Running, at: int = GUN) -> None:
    headers = {"authorization": f"Bearer {srv.tokens['timer']}"}
    httpx.post(
        srv.url + "/api/v1/races/mile/gun", json={"time": at}, headers=headers, timeout=PATIENCE_S
    )


def post(srv: Running, chip: str, point: str, at_s: float, base: int = GUN) -> None:
    headers = {"authorization": f"Bearer {srv.tokens['reader']}"}
    body = [{"reader": "r1", "point": point, "chip": chip, "time": base + int(at_s * 1000)}]
    r = httpx.post(srv.url + "/api/v1/reads", json=body, headers=headers, timeout=PATIENCE_S)
    r.raise_for_status()


async def test_board_and_feed_change_without_reload(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv)
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/races/mile")
        await page.wait_for_function("() => window.htmx !== undefined")
        await page.evaluate("() => { window.__kept = true }")
        post(srv, "C2", "finish", 431)
        post(srv, "C1", "finish", 445)
        board = page.locator("#t-board-mile-finish-all tbody tr")
        await board.nth(1).wait_for(timeout=WAIT_MS)
        names = await board.locator("td:nth-child(2) a").all_inner_texts()
        assert names == ["Grace Hopper", "Ada Lovelace"]
        feed = page.locator("#t-feed-mile li")
        assert "Ada Lovelace" in await feed.first.inner_text()  # latest finisher first
        post(srv, "C1", "half", 200)  # a late split does not disturb the finish board
        assert await page.evaluate("() => window.__kept") is True
        await page.screenshot(path=str(shot_path("spectator-race-390")), full_page=True)


async def test_following_a_runner_raises_an_alert_when_they_pass(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    now = int(time.time() * 1000)
    start = now - 230_000  # the race is on now: Ada passed halfway 20 s ago
    with serve(event_today(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv, start)
        post(srv, "C2", "half", 200, start)
        post(srv, "C1", "half", 210, start)
        await srv.asettle()  # the reads API answers before the fold has the reads
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/runners/1")
        star = page.locator("#t-runner-1 [data-follow]")
        await star.click()
        assert await star.get_attribute("aria-pressed") == "true"
        await page.goto(srv.url + "/me")
        card = page.locator("#t-runner-1")
        await card.get_by_text("Ada Lovelace").wait_for(timeout=WAIT_MS)
        assert "Due at" in await card.inner_text()
        post(srv, "C1", "finish", 440, start)
        toast = page.locator("#toasts .toast")
        await toast.wait_for(timeout=WAIT_MS)
        assert "Ada Lovelace passed Finish" in await toast.inner_text()
        await page.screenshot(path=str(shot_path("spectator-me-alert-390")))


async def test_my_runners_page_finds_and_follows_a_runner_in_place(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv)
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/me")
        await page.locator("#mine-empty").wait_for(timeout=WAIT_MS)
        await page.locator("#q").press_sequentially("hopper", delay=30)
        star = page.locator("#results [data-follow='2']")
        await star.wait_for(timeout=WAIT_MS)
        await star.click()
        # the page comes back subscribed to the new runner, whose live card it shows
        card = page.locator("#t-runner-2")
        await card.get_by_text("Grace Hopper").wait_for(timeout=WAIT_MS)
        assert await page.locator("#mine-empty").is_hidden()
        post(srv, "C2", "half", 200)
        await card.get_by_text("Halfway").first.wait_for(timeout=WAIT_MS)
        await page.locator("#toasts .toast").wait_for(timeout=WAIT_MS)
        assert "Grace Hopper passed Halfway" in await page.locator("#toasts").inner_text()


async def test_followed_bibs_without_names_get_their_topics_from_the_server(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv)
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/search")
        # bibs followed without their names (an older release; the push panel adds bare
        # bibs too), one of them no longer entered
        await page.evaluate("localStorage.setItem('livetrack.follow', '[\"2\", \"404\"]')")
        await page.goto(srv.url + "/me")
        card = page.locator("#t-runner-2")
        await card.get_by_text("Grace Hopper").wait_for(timeout=WAIT_MS)
        kept = await page.evaluate("JSON.parse(localStorage.getItem('livetrack.follow'))")
        names = await page.evaluate("JSON.parse(localStorage.getItem('livetrack.follow.names'))")
        assert kept == ["2"]
        assert names == {"2": {"topic": "runner:2", "id": "t-runner-2"}}
        post(srv, "C2", "half", 200)
        await card.get_by_text("Halfway").first.wait_for(timeout=WAIT_MS)


async def test_page_shows_reconnecting_and_recovers_after_a_server_restart(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    tokens = tokens_for()
    db = tmp_path / "log.db"
    page = await page_factory(390, 844)
    await watch_sockets(page)
    with serve(event(), db, PEOPLE, tokens=tokens) as srv:
        port = srv.port  # the restarted server takes the same port
        gun(srv)
        await page.goto(srv.url + "/races/mile")
        await page.wait_for_function("() => window.htmx !== undefined")
        await socket_open(page)
        # however long the server stays down, the page tries again within 5 s (htmx's own
        # default backs off to a minute)
        waits = await page.evaluate("[0, 3, 12, 40].map(htmx.config.wsReconnectDelay)")
        assert max(waits) <= 5000 and min(waits) > 0
    badge = page.locator("#conn")
    await badge.wait_for(state="visible", timeout=WAIT_MS)
    await page.screenshot(path=str(shot_path("spectator-reconnecting-390")))
    with serve(event(), db, PEOPLE, port=port, tokens=tokens) as srv:
        await badge.wait_for(state="hidden", timeout=RECONNECT_MS)
        post(srv, "C2", "finish", 433)
        board = page.locator("#t-board-mile-finish-all")
        await board.get_by_text("Grace Hopper").wait_for(timeout=WAIT_MS)


async def test_search_answers_as_you_type(tmp_path: Path, page_factory: PageFactory) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/")
        await page.locator("#q").press_sequentially("harr", delay=30)
        results = page.locator("#results .card")
        await results.nth(1).wait_for(timeout=WAIT_MS)
        text = await page.locator("#results").inner_text()
        assert "Ada Lovelace" in text and "Grace Hopper" in text
        await page.locator("#q").fill("")
        await page.locator("#q").press_sequentially("007x", delay=30)
        await page.get_by_text("0 found").wait_for(timeout=WAIT_MS)
        await page.locator("#q").fill("secret")
        await page.locator("#q").dispatch_event("input")
        await page.get_by_text("0 found").wait_for(timeout=WAIT_MS)  # hidden names: not searchable


async def test_narrow_phone_has_no_sideways_scroll_and_big_targets(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv)
        for bib, t in (("1", 431), ("2", 440), ("3", 450), ("4", 460)):
            post(srv, f"C{bib}", "finish", t)
        await srv.asettle()  # the reads API answers before the fold has the reads
        page = await page_factory(360, 740)
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        for path in ("/", "/races/mile", "/runners/3", "/me", "/races/mile/map"):
            await page.goto(srv.url + path)
            await page.wait_for_timeout(300)
            width = await page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 360, f"{path} scrolls sideways ({width}px)"
        await page.goto(srv.url + "/races/mile")
        sizes = await page.evaluate(
            """() => [...document.querySelectorAll('.tabs a, .star, #q')]
                  .map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height] })"""
        )
        assert sizes and all(w >= 44 and h >= 44 for w, h in sizes), sizes
        text = await page.locator("#t-board-mile-finish-all").inner_text()
        assert "<script>alert(1)</script>" in text  # shown as text, never run
        assert "Runner 4" in text and "Secret" not in text
        assert dialogs == []
        await page.screenshot(path=str(shot_path("spectator-race-360")), full_page=True)


async def test_first_load_of_the_race_page_is_small(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        headers = {"accept-encoding": "gzip"}
        total = 0
        with httpx.Client(base_url=srv.url, headers=headers, timeout=PATIENCE_S) as http:
            page = http.get("/races/mile")
            assert page.headers.get("content-encoding") == "gzip"
            total += len(gzip.compress(page.content))
            assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
            names = {a.partition("?")[0] for a in assets}
            assert {"/static/app.css", "/static/app.js"} <= names, assets
            assert any("vendor/htmx-ext-ws" in a for a in assets), assets
            for asset in assets:
                r = http.get(asset)
                assert r.status_code == 200
                assert "immutable" in r.headers["cache-control"]
                assert r.headers.get("content-encoding") == "gzip", asset
                total += int(r.headers.get("content-length", len(gzip.compress(r.content))))
        assert total <= 60 * 1024, f"first load is {total} bytes compressed"


async def test_course_map_moves_runners_between_checkpoints(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    with serve(event(), tmp_path / "log.db", PEOPLE) as srv:
        gun(srv)
        post(srv, "C2", "half", 210)
        post(srv, "C2", "finish", 431)  # the field's finish times give the next estimate
        post(srv, "C1", "half", 220)
        await srv.asettle()  # the reads API answers before the fold has the reads
        page = await page_factory(390, 844)
        await page.goto(srv.url + "/races/mile/map")
        dots = page.locator("#dots circle.dot")
        await dots.first.wait_for(timeout=WAIT_MS)
        first = await dots.first.get_attribute("cx"), await dots.first.get_attribute("cy")
        await page.wait_for_timeout(1600)
        later = await dots.first.get_attribute("cx"), await dots.first.get_attribute("cy")
        deadline = time.monotonic() + PATIENCE_S  # a busy browser may animate late
        while later == first and time.monotonic() < deadline:
            await page.wait_for_timeout(200)
            later = await dots.first.get_attribute("cx"), await dots.first.get_attribute("cy")
        assert first != later  # it moves by itself between pushes
        await page.screenshot(path=str(shot_path("spectator-map-390")))
