"""A correction that gives an impossible time is refused unless the timer confirms it, and the
console reads HH:MM:SS on the race's own day (not the event file's date)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from factory import GUN, event, person
from server import Running, serve

DAY_MS = 86_400_000


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def edit(bib: str, point: str, at: int, **kw: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "kind": "edit", "bib": bib, "point": point, "time": at,
            "reason": "photo", **kw}  # fmt: skip


def finished(srv: Running, http: httpx.Client, gun: int) -> None:
    timer = bearer(srv.tokens["timer"])
    assert http.post("/api/v1/races/mile/gun", json={"time": gun}, headers=timer).is_success
    reads = [
        {"reader": "r1", "point": "half", "chip": "C1", "time": gun + 210_000},
        {"reader": "r1", "point": "finish", "chip": "C1", "time": gun + 430_000},
        {"reader": "r1", "point": "finish", "chip": "C2", "time": gun + 440_000},
    ]
    r = http.post("/api/v1/reads", json=reads, headers=bearer(srv.tokens["reader"]))
    assert r.status_code == 200, r.text
    srv.settle()


def test_a_finish_faster_than_the_course_allows_is_refused_until_confirmed(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        finished(srv, http, GUN)
        timer = bearer(srv.tokens["timer"])
        # 800 m from halfway in 10 s: 80 m/s, far past the race's 4 m/s
        too_fast = http.post("/api/v1/corrections", json=edit("1", "finish", GUN + 220_000),
                             headers=timer)  # fmt: skip
        assert too_fast.status_code == 422, too_fast.text
        assert too_fast.json()["error"].startswith("time:")
        assert too_fast.json()["confirm"] is True
        before_gun = http.post("/api/v1/corrections", json=edit("2", "finish", GUN - 60_000),
                               headers=timer)  # fmt: skip
        assert before_gun.status_code == 422, before_gun.text
        srv.settle()
        rows = http.get("/api/v1/races/mile/standings").json()["rows"]
        assert [r["bib"] for r in rows] == ["1", "2"]
        sure = http.post("/api/v1/corrections",
                         json=edit("1", "finish", GUN + 220_000, confirm=True),
                         headers=timer)  # fmt: skip
        assert sure.status_code == 200, sure.text
        plausible = http.post("/api/v1/corrections", json=edit("2", "finish", GUN + 425_000),
                              headers=timer)  # fmt: skip
        assert plausible.status_code == 200, plausible.text


async def test_the_console_reads_a_typed_time_on_the_races_own_day(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    """The race ran the day after the event file's date (as a demo does): the time typed on
    the console is that day's, so bib 2's finish becomes 7:05, not minus a day."""
    gun = GUN + DAY_MS
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        finished(srv, http, gun)
        console: Any = await page_factory(width=1280, height=800)
        await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
        await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
        await console.locator("#lookup-bib").fill("2")
        await console.locator("#lookup button").click()
        history = console.locator("#history .history")
        await history.wait_for(timeout=WAIT_MS)
        await history.locator(".reason-input").fill("photo finish")
        finish = history.locator('tr[data-point="finish"]')
        await finish.locator("input[type=time]").fill("10:07:05")
        await finish.locator('[data-fix="edit"]').click()
        await history.locator(".audit").get_by_text("edit finish").wait_for(timeout=WAIT_MS)
        srv.settle()
        runner = http.get("/api/v1/runners/2").json()
        assert runner["splits"][-1]["time_ms"] == gun + 425_000, runner
        await console.screenshot(path=str(shot_path("timer-correction-race-day")), full_page=True)


async def test_the_console_asks_before_it_stores_an_impossible_time(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    """A finish 10 s after the gun: the console shows the server's reason and stores the time
    only when the timer confirms (the first time it is dismissed, the second accepted)."""
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        finished(srv, http, GUN)
        console: Any = await page_factory(width=1280, height=800)
        asked: list[str] = []
        answers = iter([False, True])

        async def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            await (dialog.accept() if next(answers) else dialog.dismiss())

        console.on("dialog", on_dialog)
        await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
        await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
        await console.locator("#lookup-bib").fill("2")
        await console.locator("#lookup button").click()
        history = console.locator("#history .history")
        await history.wait_for(timeout=WAIT_MS)
        await history.locator(".reason-input").fill("typed from the photo")
        finish = history.locator('tr[data-point="finish"]')
        for n in (1, 2):
            await finish.locator("input[type=time]").fill("10:00:10")
            await finish.locator('[data-fix="edit"]').click()
            for _ in range(int(PATIENCE_S / 0.1)):
                if len(asked) >= n:
                    break
                await asyncio.sleep(0.1)
            assert len(asked) == n, asked
            if n == 1:  # dismissed: nothing stored
                await console.wait_for_timeout(500)
                srv.settle()
                assert http.get("/api/v1/runners/2").json()["splits"][-1]["time_ms"] != GUN + 10_000
        await history.locator(".audit").get_by_text("edit finish").wait_for(timeout=WAIT_MS)
        assert len(asked) == 2 and all("faster" in m for m in asked), asked
        srv.settle()
        runner = http.get("/api/v1/runners/2").json()
        assert runner["splits"][-1]["time_ms"] == GUN + 10_000, runner
