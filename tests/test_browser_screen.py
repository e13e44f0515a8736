"""The big screen in a real Chromium at 1920×1080: new finishers within a second, the record
flip, boards updated in place while they rotate, recovery after a server restart, and a page
whose memory does not grow with updates."""

from __future__ import annotations

from pathlib import Path

import httpx
from browser import RECONNECT_MS, WAIT_MS, PageFactory, shot_path, socket_open, watch_sockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import serve, tokens_for
from test_browser_freshness import frames_of, snapshot_of

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


async def test_a_new_finisher_appears_on_the_screen_and_the_record_flips(
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
        _post(srv.url, srv.tokens, _read("C2", 431))
        await feed.get_by_text("Grace Hopper").wait_for(timeout=WAIT_MS)
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


#: Records the feed rows whose arrival animation started (``window.__arrived``).
ARRIVALS = """
document.addEventListener("animationstart", (e) => {
  if (e.target.matches && e.target.matches(".sfeed li")) {
    (window.__arrived ||= []).push(e.target.id);
  }
});
"""
VISIBLE = "() => document.querySelector('.boards-panel .sboard:not([hidden])').dataset.key"
#: Elements on the screen that an update in place keeps (a region sent whole replaces them):
#: the regions, the overall board's list, rows of the board that move down, the feed's rows.
KEPT = ["t-sboards-mile", "t-sfeed-mile", "t-sb-mile-div-all", "t-sb-mile-div-all-3",
        "t-sb-mile-div-all-4", "t-sb-mile-div-F-3", "t-sf-mile-1", "t-sf-mile-2"]  # fmt: skip


async def test_the_screen_updates_its_boards_in_place_and_keeps_rotating(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    names = ["Ada Lovelace", "Bo Diddley", "Cy Young", "Di Fossey", "Eve Curie"]
    people = [
        person(str(i), first_name=n.split()[0], last_name=n.split()[1], wave="A")
        for i, n in enumerate(names, start=1)
    ]
    with serve(event(), tmp_path / "log.db", people) as srv:
        _start(srv.url, srv.tokens)
        _post(srv.url, srv.tokens, _read("C1", 431), _read("C2", 440), _read("C3", 455),
              _read("C4", 470))  # fmt: skip
        page = await page_factory(width=W, height=H)
        await watch_sockets(page)
        await page.add_init_script(ARRIVALS)  # type: ignore[attr-defined]
        frames = await frames_of(page)
        await page.goto(srv.url + "/screen/mile?panels=feed,board&rotate=4")  # type: ignore[attr-defined]
        await socket_open(page)
        await snapshot_of(frames, "t-sboards-mile")
        overall = page.locator("#t-sb-mile-div-all li")  # type: ignore[attr-defined]
        assert await overall.count() == 4
        await page.evaluate(f"() => {KEPT}.forEach((id) => document.getElementById(id).__kept = 1)")  # type: ignore[attr-defined]
        whole = await page.evaluate(  # type: ignore[attr-defined]
            "() => ['t-race-mile', 't-sboards-mile', 't-sfeed-mile'].reduce("
            "(n, id) => n + document.getElementById(id).outerHTML.length, 0)"
        )
        seen = len(frames)
        _post(srv.url, srv.tokens, _read("C5", 445))  # Eve finishes third, ahead of Cy and Di
        await page.locator("#t-sb-mile-div-all-5").wait_for(state="attached", timeout=WAIT_MS)  # type: ignore[attr-defined]
        await page.wait_for_function(  # type: ignore[attr-defined]
            "() => (window.__arrived || []).includes('t-sf-mile-5')", timeout=WAIT_MS
        )
        kept = await page.evaluate(
            f"() => {KEPT}.map((id) => document.getElementById(id).__kept === 1)"
        )  # type: ignore[attr-defined]
        assert kept == [True] * len(KEPT), list(zip(KEPT, kept, strict=True))
        rows = [
            " ".join(t.split()) for t in await overall.locator(".spos, .sname").all_inner_texts()
        ]
        # the page works out the positions of the rows that moved down from their order
        assert rows == ["1", "Ada Lovelace", "2", "Bo Diddley", "3", "Eve Curie", "4",
                        "Cy Young", "5", "Di Fossey"]  # fmt: skip
        women = page.locator("#t-sb-mile-div-F li .spos")  # type: ignore[attr-defined]
        assert await women.all_inner_texts() == ["1", "2", "3"]
        arrived = await page.evaluate("window.__arrived")  # type: ignore[attr-defined]
        assert arrived == ["t-sf-mile-5"]  # the new finisher's row flashes, no other
        sent = "".join(frames[seen:])
        assert '<template data-p="after:t-sb-mile-div-all-2"><li id="t-sb-mile-div-all-5"' in sent
        assert 'id="t-sboards-mile"' not in sent and 'id="t-sfeed-mile"' not in sent
        assert 'id="t-sb-mile-div-all-3"' not in sent  # moved down, not sent
        assert len(sent) < whole / 2, (len(sent), whole, sent)
        # one board shown at a time, and the rotation goes on from the one shown
        shown = await page.evaluate(VISIBLE)  # type: ignore[attr-defined]
        order = await page.evaluate(  # type: ignore[attr-defined]
            "() => [...document.querySelectorAll('.boards-panel .sboard')]"
            ".map((b) => b.dataset.key)"
        )
        assert await page.locator(".boards-panel .sboard:not([hidden])").count() == 1  # type: ignore[attr-defined]
        await page.wait_for_function(  # type: ignore[attr-defined]
            f"() => ({VISIBLE})() !== {shown!r}", timeout=WAIT_MS + 4_000
        )
        assert await page.evaluate(VISIBLE) == order[(order.index(shown) + 1) % len(order)]  # type: ignore[attr-defined]
        await page.wait_for_function(
            f"() => ({VISIBLE})() === 'div-all'", timeout=5 * 4_000 + WAIT_MS
        )  # type: ignore[attr-defined]
        await page.wait_for_timeout(1_000)  # type: ignore[attr-defined]  # the fade-in ends
        await page.screenshot(path=str(shot_path("screen-mile-in-place")))  # type: ignore[attr-defined]


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
    # the page really was updated many times (each message changes the feed and the boards:
    # the 300 region swaps counted before they were patched in place)
    assert result["messages"] >= 150, result
    # Live heap after a forced GC: a few hundred KB of noise is allowed, growth with the
    # number of updates is not (one retained entry per update would be well over 1 MB here).
    assert result["heap_growth_bytes"] < 1_000_000, result
