"""Every time that enters the log is checked at the edge against the event's day and the race's
gun; a record already stored with a time nothing can use is skipped by the fold, listed on the
timer's problems panel, and never takes a page down (before or after a restart)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, person
from hypothesis import given, settings
from hypothesis import strategies as st
from server import serve, tokens_for

from livetrack.domain.records import ChipRead, GunStart, Record, Sighting, Sweep
from livetrack.domain.state import RaceState
from livetrack.ingest.reads import parse_body
from livetrack.store import open_log

YEAR_1 = "0001-01-01T00:00:00+00:00"
YEAR_9999 = "9999-12-31T23:00:00+00:00"
PAGES = (
    "/",
    "/races/mile",
    "/races/mile/map",
    "/runners/1",
    "/runners/2",
    "/screen",
    "/screen/mile",
    "/api/v1/races",
    "/api/v1/races/mile/standings",
    "/api/v1/runners/1",
    "/results/mile.csv",
)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_id() -> str:
    return str(uuid.uuid4())


def every_page_renders(http: httpx.Client) -> None:
    for path in PAGES:
        r = http.get(path)
        assert r.status_code < 500, f"{path}: {r.status_code} {r.text[:300]}"


def test_a_gun_in_year_one_is_refused_naming_the_time_and_no_page_breaks(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = bearer(srv.tokens["timer"])
        for bad in (YEAR_1, YEAR_9999, 10**11, "2026-06-20T10:00:00+01:00"):
            r = http.post("/api/v1/races/mile/gun", json={"time": bad}, headers=timer)
            assert r.status_code == 422, (bad, r.text)
            assert r.json()["error"].startswith("time:"), r.text
        assert http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer).is_success
        srv.settle()
        every_page_renders(http)


@pytest.mark.parametrize("when", [YEAR_1, YEAR_9999, GUN - 3600_000, GUN + 10 * 86400_000])
def test_sightings_sweeps_and_corrections_outside_the_window_are_refused_naming_the_field(
    tmp_path: Path, when: Any
) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        timer = bearer(srv.tokens["timer"])
        marshal = bearer(srv.tokens["marshal:half"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        srv.settle()
        writes: list[tuple[str, dict[str, str], Any]] = [
            ("/api/v1/sightings", marshal, [{"id": new_id(), "point": "half", "bib": "1",
                                             "time": when}]),
            ("/api/v1/corrections", timer, {"id": new_id(), "kind": "add", "bib": "1",
                                            "point": "half", "time": when, "reason": "seen"}),
            ("/api/v1/corrections", timer, {"id": new_id(), "kind": "edit", "bib": "1",
                                            "point": "finish", "time": when, "reason": "photo"}),
        ]  # fmt: skip
        if when in (YEAR_1, YEAR_9999) or (isinstance(when, int) and when > GUN):
            writes.append(("/api/v1/sweeps", marshal, {"id": new_id(), "point": "half",
                                                       "time": when}))  # fmt: skip
        before = http.get("/healthz").json()["applied"]
        for path, auth, body in writes:
            r = http.post(path, json=body, headers=auth)
            assert r.status_code == 422, (path, when, r.text)
            assert r.json()["error"].startswith("time:"), (path, r.text)
        assert http.get("/healthz").json()["applied"] == before
        every_page_renders(http)


def test_a_sighting_in_the_window_after_the_gun_is_still_accepted(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        http.post("/api/v1/races/mile/gun", json={"time": GUN},
                  headers=bearer(srv.tokens["timer"]))  # fmt: skip
        srv.settle()
        s = {"id": new_id(), "point": "half", "bib": "1", "time": GUN + 300_000}
        r = http.post("/api/v1/sightings", json=[s], headers=bearer(srv.tokens["marshal:half"]))
        assert r.status_code == 200, r.text


async def _store(db: Path, records: list[Record]) -> None:
    log = open_log(str(db))
    try:
        await log.append(records)
    finally:
        await log.close()


def test_stored_records_with_unusable_times_are_skipped_listed_and_survive_restarts(
    tmp_path: Path,
) -> None:
    """Records that reached the log before the edge checked them (an older release, another
    tool): the fold skips them, the timer's problems panel lists them, and every page renders,
    then and after each restart."""
    db = tmp_path / "log.db"
    toks = tokens_for()
    people = [person("1"), person("2")]
    asyncio.run(
        _store(
            db,
            [
                *toks[1],
                *people,
                GunStart("mile", -62135596800000, id="year-one", by="old"),
                Sighting("s-year-9999", "half", "1", 253402297199000, GUN, "old"),
                Sweep("w-year-one", "half", -62135596800000, "old"),
            ],
        )
    )
    for _ in range(2):
        with (
            serve(event(), db, people, tokens=toks) as srv,
            httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
        ):
            srv.settle()
            every_page_renders(http)
            problems = srv.app.state.runtime.state.problems  # type: ignore[attr-defined]
            assert {"gun:mile::year-one", "sighting:s-year-9999", "sweep:w-year-one"} <= set(
                problems
            )
            assert http.get("/api/v1/runners/1").json()["splits"][1].get("source") is None


def test_one_region_that_fails_leaves_the_rest_of_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in one region's view (here made on purpose) shows that region as unavailable
    and draws the others; the page answers 200."""
    from livetrack.web import views

    def broken(*args: object) -> object:
        raise ZeroDivisionError("a fault in the feed view")

    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        monkeypatch.setattr(views, "feed", broken)
        page = http.get("/races/mile")
        assert page.status_code == 200
        assert "cannot be shown just now" in page.text
        assert "t-board-mile-finish-all" in page.text  # the board region is drawn all the same


@settings(max_examples=200, deadline=None, database=None)
@given(
    offset=st.integers(-5 * 86_400_000, 5 * 86_400_000),
    received=st.integers(-5 * 86_400_000, 5 * 86_400_000),
)
def test_every_read_the_reads_api_accepts_is_one_the_fold_uses(offset: int, received: int) -> None:
    """The fold's rule for stored reads is the edge's (as it always was), so a log of reads
    that an earlier release accepted folds as it did, with none skipped."""
    ev = event()
    now = GUN + received
    body = json.dumps([{"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + offset}])
    [verdict] = parse_body(body.encode(), ev, now)
    state = RaceState(ev)
    state.apply(person("1"))
    record = ChipRead("r1", "finish", "C1", GUN + offset, received_ms=now)
    state.apply(record)
    assert (verdict.record is not None) == (record.key not in state.problems)


async def until(ws: websockets.ClientConnection, needle: str) -> None:
    while needle not in str(await ws.recv()):
        pass


async def test_a_region_that_fails_to_render_leaves_the_others_live_and_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from livetrack.web import views

    def broken(*args: object) -> object:
        raise ZeroDivisionError("a fault in the feed view")

    monkeypatch.setattr(views, "feed", broken)
    with serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv:
        topics = "feed:mile,board:mile:finish:all"
        async with websockets.connect(f"{srv.ws_url}/live?topics={topics}",
                                      open_timeout=PATIENCE_S) as ws:  # fmt: skip
            first = await asyncio.wait_for(ws.recv(), PATIENCE_S)
            assert 'id="t-board-mile-finish-all"' in str(first)
            async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
                timer = bearer(srv.tokens["timer"])
                await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
                for i in (1, 2):  # two finishes, one after the other: two renders of the feed
                    read = {"reader": "r1", "point": "finish", "chip": f"C{i}",
                            "time": GUN + 430_000 + i * 1000}  # fmt: skip
                    r = await http.post("/api/v1/reads", json=[read],
                                        headers=bearer(srv.tokens["reader"]))  # fmt: skip
                    assert r.status_code == 200
                    await asyncio.wait_for(until(ws, f"First{i}"), PATIENCE_S)
    failures = [r for r in caplog.records if "rendering topic 'feed:mile' failed" in r.getMessage()]
    assert len([r for r in failures if r.levelno >= logging.ERROR]) == 1
