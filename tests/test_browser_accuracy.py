"""How good today's predictions were, in a real Chromium: the results page and the timer
console show, per checkpoint, the typical error of the finish time predicted there and how
often the finish fell inside the 80% range, the same figures a fresh fold of the log gives."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
from browser import WAIT_MS, PageFactory, shot_path
from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read
from server import serve

from livetrack.domain.records import Record
from livetrack.domain.results import prediction_accuracy
from livetrack.domain.state import RaceState

RUNNERS = 24


def race_reads() -> list[dict[str, Any]]:
    """Half and finish reads of a mile field, each runner a little slower after halfway."""
    rnd = random.Random(4)
    out = []
    for b in range(1, RUNNERS + 1):
        half = 190.0 + 4.0 * b + rnd.uniform(-5, 5)
        finish = half * (2.0 + rnd.gauss(0.06, 0.05))
        out.append(
            {"reader": "r1", "point": "half", "chip": f"C{b}", "time": GUN + int(half * 1000)}
        )
        out.append(
            {"reader": "r1", "point": "finish", "chip": f"C{b}", "time": GUN + int(finish * 1000)}
        )
    out.sort(key=lambda r: int(r["time"]))
    return out


async def test_results_page_and_timer_console_show_todays_prediction_accuracy(
    tmp_path: Path, page_factory: PageFactory
) -> None:
    people = [person(str(b)) for b in range(1, RUNNERS + 1)]
    reads = race_reads()
    # the same log folded here, in another state: the figures every process must show
    local = RaceState(event())
    records: list[Record] = [*people, gun()]
    records += [read(str(r["chip"]), str(r["point"]), (int(r["time"]) - GUN) / 1000) for r in reads]
    local.apply_all(records)
    local.forecasts.settle()
    expected = prediction_accuracy(local, "mile")
    assert [a["checkpoint"] for a in expected] == ["half"]
    half = expected[0]
    assert RUNNERS - 5 <= half["finishers"] <= RUNNERS  # the quickest halves are implausible
    with (
        serve(event(), tmp_path / "log.db", people) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer).raise_for_status()
        for i in range(0, len(reads), 7):  # in several posts, as readers send them
            http.post("/api/v1/reads", json=reads[i : i + 7], headers=reader).raise_for_status()

        # the server's forecasts observe the new passings in the background, within a second
        deadline = time.monotonic() + PATIENCE_S
        while True:
            body = http.get("/results/mile.json").json()
            if body["prediction_accuracy"] == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert body["prediction_accuracy"] == expected

        page: Any = await page_factory(width=390, height=844)
        await page.goto(srv.url + "/results/mile")
        table = page.locator(".accuracy-table")
        row = table.locator("tbody tr").first
        await row.wait_for(timeout=WAIT_MS)
        cells = await row.locator("th, td").all_inner_texts()
        assert cells == [
            "Halfway",
            str(half["finishers"]),
            half["mae"],
            f"{half['inside_80_pct']:.0f}%",
        ]
        await page.locator(".accuracy").scroll_into_view_if_needed()
        await page.screenshot(path=str(shot_path("results-accuracy-phone")), full_page=True)

        console: Any = await page_factory(width=1280, height=800)
        await console.goto(f"{srv.url}/signin#token={srv.tokens['timer']}")
        await console.wait_for_url(srv.url + "/timer", timeout=WAIT_MS)
        panel = console.locator("#t-accuracy")
        await panel.get_by_text(half["mae"]).wait_for(timeout=WAIT_MS)
        cells = await panel.locator("tbody tr").first.locator("th, td").all_inner_texts()
        assert cells == [
            "Halfway",
            str(half["finishers"]),
            half["mae"],
            f"{half['inside_80_pct']:.0f}%",
        ]
        await console.screenshot(path=str(shot_path("timer-accuracy-desktop")), full_page=True)
