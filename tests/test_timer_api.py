"""The timer's console API over real sockets: corrections with an audit trail, statuses, chip
assignment, gun fixes, the live announcer, reader health, problems, escaping, sign-in links."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read
from server import Running, recv_until, serve

from livetrack.cli import main as cli
from livetrack.domain.records import ChipRead, Sighting
from livetrack.domain.state import RaceState
from livetrack.web import features
from livetrack.web.timer import problems_view, readers_view

XSS = "<img src=x onerror=alert(1)>"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def new_id() -> str:
    return str(uuid.uuid4())


async def recv_all(
    ws: websockets.ClientConnection, needles: tuple[str, ...], timeout: float = PATIENCE_S
) -> str:
    """Everything received until every needle has been seen (one message may carry several
    regions)."""

    async def loop() -> str:
        got = ""
        while not all(n in got for n in needles):
            msg = await ws.recv()
            assert isinstance(msg, str)
            got += msg
        return got

    return await asyncio.wait_for(loop(), timeout)


def finish_order(http: httpx.Client) -> list[str]:
    rows = http.get("/api/v1/races/mile/standings").json()["rows"]
    return [r["bib"] for r in rows]


def post_reads(srv: Running, http: httpx.Client, reads: list[dict[str, Any]]) -> None:
    """Post reads and wait until the fold has them (the reads API does not wait)."""
    r = http.post("/api/v1/reads", json=reads, headers=bearer(srv.tokens["reader"]))
    assert r.status_code == 200, r.text
    srv.settle()


def fin(chip: str, at_s: float, point: str = "finish") -> dict[str, Any]:
    return {"reader": "r1", "point": point, "chip": chip, "time": GUN + int(at_s * 1000)}


def test_an_edit_reorders_the_standings_is_audited_and_can_be_undone(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        t = bearer(srv.tokens["timer"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
        post_reads(srv, http, [fin("C1", 500), fin("C2", 510)])
        assert finish_order(http) == ["1", "2"]
        edit_id = new_id()
        body = {
            "id": edit_id,
            "kind": "edit",
            "bib": "2",
            "point": "finish",
            "time": "2026-06-14T10:08:00+01:00",
            "reason": "mat missed the lead",
        }
        r = http.post("/api/v1/corrections", json=body, headers=t)
        assert r.status_code == 200, r.text
        assert finish_order(http) == ["2", "1"]
        history = http.get("/api/v1/history/2", headers=t).text
        assert "edit finish" in history and "test timer" in history
        assert "mat missed the lead" in history
        undo = {"id": new_id(), "kind": "undo", "target": f"correction:{edit_id}", "reason": "oops"}
        assert http.post("/api/v1/corrections", json=undo, headers=t).status_code == 200
        assert finish_order(http) == ["1", "2"]
        assert "undone" in http.get("/api/v1/history/2", headers=t).text


def test_void_and_add_and_their_refusals(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        t = bearer(srv.tokens["timer"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
        post_reads(srv, http, [fin("C1", 500)])
        base = {"bib": "1", "point": "finish", "reason": "ghost read"}
        assert (
            http.post(
                "/api/v1/corrections", json={**base, "id": new_id(), "kind": "void"}, headers=t
            ).status_code
            == 200
        )
        assert finish_order(http) == []
        add = {**base, "id": new_id(), "kind": "add", "point": "half", "time": GUN + 250_000}
        assert http.post("/api/v1/corrections", json=add, headers=t).status_code == 200
        assert http.get("/api/v1/runners/1").json()["splits"][1]["source"] == "corrected"
        for bad, word in [
            ({**base, "id": new_id(), "kind": "void", "reason": ""}, "reason"),
            ({**base, "id": new_id(), "kind": "void", "bib": "404"}, "bib"),
            ({**base, "id": new_id(), "kind": "void", "point": "lap1"}, "point"),
            ({**base, "id": new_id(), "kind": "edit"}, "time"),
            ({**base, "id": "x", "kind": "void"}, "id"),
            ({**base, "id": new_id(), "kind": "delete"}, "kind"),
        ]:
            r = http.post("/api/v1/corrections", json=bad, headers=t)
            assert r.status_code == 422 and word in r.json()["error"], (bad, r.text)


def test_statuses_take_runners_off_the_board_and_back(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1"), person("2")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        t = bearer(srv.tokens["timer"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
        post_reads(srv, http, [fin("C1", 500), fin("C2", 510)])
        dq = {"id": new_id(), "bib": "1", "status": "DQ", "reason": "cut the course"}
        assert http.post("/api/v1/status", json=dq, headers=t).status_code == 200
        assert finish_order(http) == ["2"]
        ok = {"id": new_id(), "bib": "1", "status": "ok", "reason": ""}
        assert http.post("/api/v1/status", json=ok, headers=t).status_code == 200
        assert finish_order(http) == ["1", "2"]
        assert (
            http.post(
                "/api/v1/status", json={**dq, "id": new_id(), "status": "gone"}, headers=t
            ).status_code
            == 422
        )


def test_assigning_an_unmatched_chip_processes_its_earlier_reads(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1", chips=())]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        t = bearer(srv.tokens["timer"])
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
        post_reads(srv, http, [fin("SPARE7", 480)])
        assert finish_order(http) == []
        body = {"id": new_id(), "chip": "SPARE7", "bib": "1"}
        assert http.post("/api/v1/assign", json=body, headers=t).status_code == 200
        assert finish_order(http) == ["1"]
        assert "chip SPARE7 assigned" in http.get("/api/v1/history/1", headers=t).text


def test_a_late_gun_is_fixed_by_the_real_time_and_a_fix_can_be_undone(tmp_path: Path) -> None:
    with (
        serve(event(), tmp_path / "log.db", [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        t = bearer(srv.tokens["timer"])
        pressed = http.post("/api/v1/races/mile/gun", json={"time": GUN + 4_000}, headers=t).json()
        post_reads(srv, http, [fin("C1", 500)])
        assert http.get("/api/v1/runners/1").json()["splits"][2]["gun"] == "8:16"
        real = http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t).json()
        srv.settle()  # the gun API does not wait for the fold
        assert http.get("/api/v1/runners/1").json()["splits"][2]["gun"] == "8:20"
        undo = {"id": new_id(), "kind": "undo", "target": real["key"]}
        assert http.post("/api/v1/corrections", json=undo, headers=t).status_code == 200
        assert http.get("/api/v1/runners/1").json()["splits"][2]["gun"] == "8:16"
        assert pressed["key"] != real["key"]


async def test_the_announcer_shows_a_new_finisher_first_with_name_and_position(
    tmp_path: Path,
) -> None:
    people = [person("1", first_name="Ada", last_name="Lovelace"), person("2")]
    with serve(event(), tmp_path / "log.db", people) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            t = bearer(srv.tokens["timer"])
            await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
            await http.post(
                "/api/v1/reads", json=[fin("C2", 430)], headers=bearer(srv.tokens["reader"])
            )
            await srv.asettle()  # the runner in first place is in before the clock starts
            hello = {"token": srv.tokens["timer"], "topics": ["announce", "guns", "unmatched"]}
            async with websockets.connect(srv.ws_url + "/ws/staff", open_timeout=PATIENCE_S) as ws:
                await ws.send(json.dumps(hello))
                await recv_until(ws, 'id="t-announce"')
                await http.post(
                    "/api/v1/reads", json=[fin("C1", 440)], headers=bearer(srv.tokens["reader"])
                )
                frag = await recv_until(ws, "Ada Lovelace")
                # the new finisher's line alone, put first in the list
                first = frag.split("<li")[1]
                assert 'data-p="first:t-announce-l"' in frag
                assert "Ada Lovelace" in first and '<span class="pos">2</span>' in first


def test_reader_health_alerts_when_a_reader_goes_quiet_during_a_race() -> None:
    st = RaceState(event())
    st.apply(person("1"))
    st.apply(person("2"))
    st.apply(gun())
    st.apply(ChipRead("slow-clock", "half", "C1", GUN + 200_000, received_ms=GUN + 202_500))
    fresh = {r["id"]: r for r in readers_view(st, GUN + 210_000)["rows"]}
    assert fresh["slow-clock"]["connection"] == "receiving"
    assert fresh["slow-clock"]["per_minute"] == 1
    assert fresh["slow-clock"]["offset"] == "+2.5 s"
    assert fresh["slow-clock"]["alert"] == ""
    assert fresh["spare"]["connection"] == "silent"
    later = {r["id"]: r for r in readers_view(st, GUN + 500_000)["rows"]}
    assert later["slow-clock"]["connection"] == "quiet"
    assert "quiet for" in later["slow-clock"]["alert"]


def test_a_race_simulated_ahead_of_the_wall_clock_does_not_make_its_readers_quiet() -> None:
    st = RaceState(event())
    st.apply(person("1"))
    st.apply(gun())
    wall = GUN - 3 * 3600_000  # the demo plays the race ten times faster than real time
    st.apply(ChipRead("slow-clock", "half", "C1", GUN + 200_000, received_ms=wall))
    event_now = GUN + 210_000  # the race's own clock
    heard = {r["id"]: r for r in readers_view(st, event_now, wall + 1_000)["rows"]}
    assert heard["slow-clock"]["connection"] == "receiving"
    assert heard["slow-clock"]["alert"] == ""
    assert heard["slow-clock"]["per_minute"] == 1
    # silent on the wall clock for longer than allowed: quiet, whatever the race clock says
    later = {r["id"]: r for r in readers_view(st, event_now, wall + 500_000)["rows"]}
    assert later["slow-clock"]["connection"] == "quiet"
    assert "quiet for 8:20" in later["slow-clock"]["alert"]


def test_problems_list_manual_contradictions_missing_splits_and_impossible_paces() -> None:
    st = RaceState(event())
    for b in ("1", "2", "3", "4"):
        st.apply(person(b))
    st.apply(gun())
    st.apply(Sighting("s1", "half", "1", GUN + 200_000))  # manual only
    st.apply(read("C2", "half", 200))
    st.apply(Sighting("s2", "half", "2", GUN + 900_000))  # contradiction
    st.apply(read("C3", "finish", 420))  # no half: missing split
    st.apply(Sighting("s4", "half", "4", GUN + 30_000))  # 800 m in 30 s
    st.apply(Sighting("s5", "half", "999", GUN + 30_000))  # nobody has that bib
    kinds = {(p["kind"], p["bib"]) for p in problems_view(st)["rows"]}
    assert ("manual-only", "1") in kinds
    assert ("contradiction", "2") in kinds
    assert ("missing-split", "3") in kinds
    assert ("impossible-pace", "4") in kinds
    assert ("unknown-bib", "999") in kinds


async def test_typed_text_is_escaped_on_every_page_that_shows_it(tmp_path: Path) -> None:
    with serve(event(), tmp_path / "log.db", [person("1")]) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=PATIENCE_S) as http:
            t = bearer(srv.tokens["timer"])
            m = bearer(srv.tokens["marshal:half"])
            await http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
            writes = [
                (
                    "/api/v1/sightings",
                    [{"id": new_id(), "point": "half", "bib": XSS, "time": GUN + 9}],
                    m,
                ),
                ("/api/v1/status", {"id": new_id(), "bib": "1", "status": "DNF", "reason": XSS}, m),
                (
                    "/api/v1/corrections",
                    {
                        "id": new_id(),
                        "kind": "add",
                        "bib": "1",
                        "point": "half",
                        "time": GUN + 200_000,
                        "reason": XSS,
                    },
                    t,
                ),
                (
                    "/api/v1/reads",
                    [{"reader": "r1", "point": "finish", "chip": XSS, "time": GUN + 1}],
                    bearer(srv.tokens["reader"]),
                ),
                ("/api/v1/assign", {"id": new_id(), "chip": XSS, "bib": "1"}, t),
            ]
            for path, body, headers in writes:
                r = await http.post(path, json=body, headers=headers)
                assert r.status_code == 200, (path, r.text)
            pages = [
                (await http.get("/runners/1")).text,
                (await http.get("/api/v1/history/1", headers=t)).text,
                (await http.get("/results/mile")).text,
                (await http.get("/races/mile")).text,
            ]
            hello = {
                "token": srv.tokens["timer"],
                "topics": ["problems", "marshal:half", "unmatched"],
            }
            async with websockets.connect(srv.ws_url + "/ws/staff", open_timeout=PATIENCE_S) as ws:
                await ws.send(json.dumps(hello))
                needles = ('id="t-problems"', 'id="t-marshal-half"', 'id="t-unmatched"')
                pages.append(await recv_all(ws, needles))
            everything = "\n".join(pages)
            assert XSS not in everything
            assert everything.count("&lt;img src=x onerror=alert(1)&gt;") >= 4


def test_token_link_puts_the_token_in_the_fragment_and_revoke_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "log.db")
    assert (
        cli(
            [
                "token",
                "create",
                "--role",
                "marshal",
                "--point",
                "half",
                "--label",
                "lake",
                "--link",
                "--base-url",
                "https://race.example/",
                "--db",
                db,
            ]
        )
        == 0
    )
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://race.example/signin#token=lt_")
    token = link.split("#token=", 1)[1]
    with (
        serve(event(), db, [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        who = http.get("/api/v1/whoami", headers=bearer(token)).json()
        assert who == {
            "role": "marshal",
            "point": "half",
            "point_name": "Halfway",
            "label": "lake",
            "topics": {"marshal:half": "t-marshal-half"},
        }
    assert cli(["token", "revoke", "--token", token, "--db", db]) == 0
    with (
        serve(event(), db, [person("1")]) as srv,
        httpx.Client(base_url=srv.url, timeout=PATIENCE_S) as http,
    ):
        assert http.get("/api/v1/whoami", headers=bearer(token)).status_code == 401


def test_a_finish_makes_the_watched_announcer_dirty_in_the_same_tick() -> None:
    r = features.renderer(RaceState(event()))
    for rec in (person("1"), person("2"), gun()):
        r.state.apply(rec)
    halfway = r.state.apply(read("C1", "half", 200))
    assert "announce" not in r.derive(set(halfway), ["announce"])  # no finish, nothing to say
    finish = r.state.apply(read("C1", "finish", 430))
    assert "announce" in r.derive(set(finish), ["announce"])
    assert "announce" not in r.derive(set(finish), ["guns"])  # nobody watches it
