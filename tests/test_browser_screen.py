"""The big screen in a real Chromium at 1920×1080: new finishers within a second, the record
flip, recovery after a server restart, and a page whose memory does not grow with updates."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from browser import RECONNECT_MS, WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import serve, tokens_for

W, H = 1920, 1080


def _read(chip: str, at_s: float, seq: int | None = None) -> dict[str, object]:
    return {"reader": "r1", "point": "finish", "chip": chip, "time": GUN + int(at_s * 1000),
            "seq": seq}  # fmt: skip


def _start(url: str, tokens: dict[str, str]) -> None:
    timer = {"authorization": f"Bearer {tokens['timer']}"}
    r = httpx.post(
        url + "/api/v1/races/mile/gun", json={"time": GUN}, headers=timer, timeout=PATIENCE_S
    )
    r.raise_for_status()


def _post(url: str, tokens: dict[str, str], *reads: dict[str, object]) -> None:
    reader = {"authorization": f"Bearer {tokens['reader']}"}
    r = httpx.post(url + "/api/v1/reads", json=list(reads), headers=reader, timeout=PATIENCE_S)
    r.raise_for_status()


async def _open(page_factory: PageFactory, url: str) -> object:
    page = await page_factory(width=W, height=H)
    await watch_sockets(page)
    await page.goto(url)  # type: ignore[attr-defined]
    await page.wait_for_function(  # type: ignore[attr-defined]
        "() => window.htmx !== undefined && document.querySelector('[ws-connect]')"
    )
    await socket_open(page)
    return page


async def test_new_finisher_appears_on_the_screen_within_a_second_and_the_record_flips(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [
        person("1", first_name="Ada", last_name="Lovelace", wave="A"),
        person("2", first_name="Grace", last_name="Hopper", wave="A"),
    ]
    with serve(event(), tmp_path / "log.db", people) as srv:
        _start(srv.url, srv.tokens)
        page = await _open(page_factory, srv.url + "/screen/mile?panels=feed,board,record&rotate=5")
        assert await page.evaluate("getComputedStyle(document.body).cursor") == "none"  # type: ignore[attr-defined]
        feed = page.locator("#t-sfeed-mile")  # type: ignore[attr-defined]
        await feed.get_by_text("Waiting for the first finisher").wait_for(timeout=WAIT_MS)
        t0 = time.monotonic()
        _post(srv.url, srv.tokens, _read("C2", 431))
        await feed.get_by_text("Grace Hopper").wait_for(timeout=WAIT_MS)
        took = time.monotonic() - t0
        assert took < 1.0, f"the finisher appeared after {took:.2f} s"
        assert "7:11" in await feed.inner_text()
        record = page.locator("#t-srecord-mile")  # type: ignore[attr-defined]
        assert "NEW COURSE RECORD" not in await record.inner_text()
        _post(srv.url, srv.tokens, _read("C1", 411))
        await record.get_by_text("NEW COURSE RECORD 6:51 — Ada Lovelace").wait_for(timeout=WAIT_MS)
        sizes = await page.evaluate(  # type: ignore[attr-defined]
            "[document.documentElement.scrollHeight, document.documentElement.scrollWidth]"
        )
        assert sizes == [H, W]  # nothing to scroll
        await page.wait_for_timeout(1000)  # type: ignore[attr-defined]
        await page.screenshot(path=str(shot_path("screen-mile-record")))  # type: ignore[attr-defined]


async def test_screen_recovers_by_itself_after_the_server_restarts(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace", wave="A"),
              person("2", first_name="Bo", last_name="Diddley", wave="A")]  # fmt: skip
    db = tmp_path / "log.db"
    tokens = tokens_for()
    with serve(event(), db, people, tokens=tokens) as srv:
        port = srv.port
        _start(srv.url, srv.tokens)
        _post(srv.url, srv.tokens, _read("C1", 500))
        page = await _open(page_factory, srv.url + "/screen/mile?panels=feed")
        await page.locator("#t-sfeed-mile").get_by_text("Ada Lovelace").wait_for(timeout=WAIT_MS)  # type: ignore[attr-defined]
    await page.locator("#conn").wait_for(state="visible", timeout=WAIT_MS)  # type: ignore[attr-defined]
    with serve(event(), db, people, port=port, tokens=tokens) as srv:
        _post(srv.url, srv.tokens, _read("C2", 520))
        feed = page.locator("#t-sfeed-mile")  # type: ignore[attr-defined]
        await feed.get_by_text("Bo Diddley").wait_for(timeout=RECONNECT_MS)
        assert "Ada Lovelace" in await feed.inner_text()
        await page.locator("#conn").wait_for(state="hidden", timeout=WAIT_MS)  # type: ignore[attr-defined]


async def test_screen_memory_and_dom_stay_bounded_over_thousands_of_updates(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from screen_memory import drive

    result = await drive(tmp_path, page_factory, updates=1200)
    # The feed holds a fixed number of entries however many finishers there are.
    assert result["feed_items_after"] == result["feed_items_before"] == 7
    assert result["dom_nodes_after"] <= result["dom_nodes_before"] + 20
    assert result["swaps"] >= 300  # the page really was updated many times
    # Live heap after a forced GC: a few hundred KB of noise is allowed, growth with the
    # number of updates is not (one retained entry per update would be well over 1 MB here).
    assert result["heap_growth_bytes"] < 1_000_000, result
