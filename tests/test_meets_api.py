"""A race in rounds over real sockets: the timer draws the heats, uploads photo-finish files
(bad lines reported, 4xx when nothing could be imported), types a hand-timed heat, scratches
an athlete; the watched folder imports files as the camera writes them; pages show heats,
lanes and Q/q."""

from __future__ import annotations

import contextlib
import csv
import io
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PATIENCE_S
from factory import EVENT_TOML
from meetkit import ENTRIES, TRACK, entries, heat_rows, lif, meet_event
from server import Running, serve

from livetrack.cli import main as cli
from livetrack.domain.state import RaceState
from livetrack.web.timer_views import problems_view


def bearer(srv: Running, role: str = "timer") -> dict[str, str]:
    return {"authorization": f"Bearer {srv.tokens[role]}"}


def state(srv: Running) -> RaceState:
    st: RaceState = srv.app.state.runtime.state  # type: ignore[attr-defined]
    return st


def draw_heats(srv: Running, http: httpx.Client) -> None:
    r = http.post("/api/v1/rounds/b100/draw", json={"id": str(uuid.uuid4()), "round": "heats"},
                  headers=bearer(srv))  # fmt: skip
    assert r.status_code == 200, r.text


def upload(srv: Running, http: httpx.Client, text: str, name: str) -> httpx.Response:
    return http.post(f"/api/v1/lif?name={name}", content=text.encode(), headers=bearer(srv))


def test_uploads_need_a_timer_and_a_file_that_names_a_drawn_heat(tmp_path: Path) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv, httpx.Client(base_url=srv.url) as http:
        text = "7,1,1,Heat 1,+0.1,m/s\n1,101,4,A,B,C,14.00\n"
        assert http.post("/api/v1/lif?name=h1.lif", content=text).status_code == 401
        assert upload_as(srv, http, text, "reader").status_code == 403
        r = upload(srv, http, text, "h1.lif")
        assert r.status_code == 422
        assert r.json()["problems"] == ["h1.lif:1: Heats of Backward 100 m is not drawn yet"]
        draw_heats(srv, http)
        rows = heat_rows(state(srv), "heats", 1)
        bad = lif(1, rows).replace(f",{rows[1][1]},", f",{rows[1][1]}X,", 1)  # not in heat 1
        bad += "3,999\n"  # malformed
        r = upload(srv, http, bad, "h1.lif")
        assert r.status_code == 200, r.text
        body = r.json()
        n = len(rows)
        assert body["imported"] == n - 1 and body["heat"] == 1
        assert body["problems"] == [
            f"h1.lif:3: bib {rows[1][1]}X is not in heat 1 of Heats",
            f"h1.lif:{n + 2}: malformed line: fewer than 7 fields",
        ]
        assert upload(srv, http, bad, "h1-again.lif").json()["results"][0]["status"] == (
            "duplicate"
        )
        problems = [p.detail for p in state(srv).problems.values()]
        assert any("h1.lif:3:" in d for d in problems)  # on the timer's problems panel
        r = upload(srv, http, "7,1,2,Heat 2\n1,101,4,A,B,C,0\n", "h2.lif")
        assert r.status_code == 422
        assert r.json()["problems"] == ["h2.lif:2: a time of 0 is not a result"]


def upload_as(srv: Running, http: httpx.Client, text: str, role: str) -> httpx.Response:
    return http.post("/api/v1/lif?name=x.lif", content=text.encode(), headers=bearer(srv, role))


def test_hand_times_and_a_scratch_go_through_the_timers_api(tmp_path: Path) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv, httpx.Client(base_url=srv.url) as http:
        draw_heats(srv, http)
        rows = heat_rows(state(srv), "heats", 2)
        lines = "\n".join(f"{p}, {b}, {t[:5]}" for p, b, _, t, _ in rows)
        hand = {"round": "heats", "heat": 2, "lines": lines + "\n1 nobody"}
        r = http.post("/api/v1/rounds/b100/hand", headers=bearer(srv), json=hand)
        assert r.status_code == 200, r.text
        assert r.json()["problems"] == [
            f"hand-timed:{len(rows) + 1}: bib nobody has a place but no time"
        ]
        rr = state(srv).meet.get("b100")
        assert rr is not None and rr.results[("heats", 2)].source == "hand"
        # heat 1 is not in: a scratch is still possible there
        bib = heat_rows(state(srv), "heats", 1)[0][1]
        adj: dict[str, Any] = {"id": str(uuid.uuid4()), "round": "heats", "kind": "scratch",
                               "bib": bib, "reason": "hamstring"}  # fmt: skip
        r = http.post("/api/v1/rounds/b100/adjust", json=adj, headers=bearer(srv))
        assert r.status_code == 200, r.text
        heats = rr.state("heats").draw
        assert heats is not None and bib not in heats.bibs()
        again = {**adj, "id": str(uuid.uuid4())}
        r = http.post("/api/v1/rounds/b100/adjust", json=again, headers=bearer(srv))
        assert r.status_code == 422 and "not in the draw" in r.json()["error"]
        scratched = {**adj, "id": str(uuid.uuid4()), "round": "heats", "bib": rows[0][1]}
        r = http.post("/api/v1/rounds/b100/adjust", json=scratched, headers=bearer(srv))
        assert r.status_code == 422 and "has its result already" in r.json()["error"]


def test_hand_times_do_not_replace_a_photo_finish_result_unless_told_to(tmp_path: Path) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv, httpx.Client(base_url=srv.url) as http:
        draw_heats(srv, http)
        rows = heat_rows(state(srv), "heats", 1)
        assert upload(srv, http, lif(1, rows), "007-1-01.lif").status_code == 200
        srv.settle()
        rr = state(srv).meet.get("b100")
        assert rr is not None
        photo = rr.results[("heats", 1)]
        lines = "\n".join(f"{p}, {b}, {t[:4]}" for p, b, _, t, _ in rows)
        hand = {"round": "heats", "heat": 1, "lines": lines}
        r = http.post("/api/v1/rounds/b100/hand", headers=bearer(srv), json=hand)
        assert r.status_code == 409, r.text
        assert r.json()["held"] == "lif:007-1-01.lif"
        assert "Heats heat 1 has a photo-finish result (007-1-01.lif)" in r.json()["error"]
        assert "replace: true" in r.json()["error"]
        r = http.post("/api/v1/rounds/b100/hand", headers=bearer(srv), json={**hand, "replace": 1})
        assert r.status_code == 422 and "replace: true or false" in r.json()["error"]
        srv.settle()
        assert rr.results[("heats", 1)] == photo  # nothing was stored: the photo finish stands
        r = http.post(
            "/api/v1/rounds/b100/hand", headers=bearer(srv), json={**hand, "replace": True}
        )
        assert r.status_code == 200, r.text
        srv.settle()
        assert rr.results[("heats", 1)].source == "hand"
        # hand times over hand times (a typo put right) need no confirmation
        again = {**hand, "lines": lines.replace(f", {rows[0][3][:4]}", ", 13.9", 1)}
        r = http.post("/api/v1/rounds/b100/hand", headers=bearer(srv), json=again)
        assert r.status_code == 200, r.text


def wait_for(check: Any) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_the_watched_folder_imports_each_heat_and_the_final_is_drawn(tmp_path: Path) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    with (
        serve(ev, tmp_path / "m.db", entries(ev), lif_dir=str(folder)) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        draw_heats(srv, http)
        rr = state(srv).meet.get("b100")
        assert rr is not None
        (folder / "notes.txt").write_text("not a result")
        for heat, base in ((1, 14_000), (2, 14_050), (3, 14_020)):
            part = folder / f"007-1-{heat:02d}.tmp"
            part.write_text(lif(heat, heat_rows(state(srv), "heats", heat, base)))
            part.rename(folder / f"007-1-{heat:02d}.lif")
        wait_for(lambda: rr.state("final").draw is not None)
        final = rr.state("final").draw
        assert final is not None and len(final.seats) == 8
        page = http.get("/races/b100").text
        for bib, lane in final.heat(1):
            name = state(srv).runners[bib].name
            assert f'data-bib="{bib}" data-lane="{lane}"' in page and name in page
        assert "The first 2 in each heat (Q) and the next 2 fastest (q) go to the Final." in page
        assert page.count('class="q q-big"') == 6 and page.count('class="q q-small"') == 2
        rows = list(csv.DictReader(io.StringIO(http.get("/results/b100.csv").text)))
        assert len([r for r in rows if r["round"] == "heats"]) == 20
        assert sorted(r["bib"] for r in rows if r["round"] == "final") == sorted(final.bibs())
        q = [r["qualified"] for r in rows if r["round"] == "heats"]
        assert (q.count("Q"), q.count("q")) == (6, 2)
        first = next(r for r in rows if r["round"] == "heats" and r["heat"] == "1")
        assert first["time_ms"] and first["reaction"] == "0.150" and first["wind"] == "+1.2 m/s"
        assert "Heats · heat 3" in http.get("/results/b100").text
        screen = http.get("/screen/b100").text
        assert "Final · lanes" in screen and "wind +1.2 m/s" in screen


def test_check_event_lists_the_rounds_and_entries_without_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_file = tmp_path / "event.toml"
    event_file.write_text(EVENT_TOML + TRACK)
    people = tmp_path / "entries.csv"
    people.write_text(ENTRIES + "121,b100,No,Time,M,Club 1,\n")
    assert cli(["check-event", str(event_file), "--participants", str(people)]) == 0
    out = capsys.readouterr().out
    assert "    in rounds: Heats → Final; 8 lanes; photo-finish event 7" in out
    assert "  b100: 1 entries without an entry time (seeded last, by lot): bib 121" in out


def test_a_file_uploaded_again_after_a_wrong_one_counts_again(tmp_path: Path) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv, httpx.Client(base_url=srv.url) as http:
        draw_heats(srv, http)
        right = lif(1, heat_rows(state(srv), "heats", 1, 14_000))
        wrong = lif(1, heat_rows(state(srv), "heats", 1, 15_000))
        rr = state(srv).meet.get("b100")
        assert rr is not None

        def times() -> list[int | None]:
            return sorted(m.time_ms for m in rr.state("heats").marks.values())

        statuses = []
        for text in (right, wrong, right, right):
            r = upload(srv, http, text, "007-1-01.lif")
            assert r.status_code == 200, r.text
            statuses.append(r.json()["results"][0]["status"])
            srv.settle()
        assert statuses == ["accepted", "accepted", "accepted", "duplicate"]
        assert times()[0] == 14_000  # the right file counts again, not the wrong one
        assert len([k for k in state(srv).meet.get("b100").results]) == 1  # type: ignore[union-attr]


def test_a_watched_file_that_imports_nothing_is_a_problem_until_its_heat_is_drawn(
    tmp_path: Path,
) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    with (
        serve(ev, tmp_path / "m.db", entries(ev), lif_dir=str(folder)) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        (folder / "007-1-01.lif").write_text("7,1,1,Heat 1,+0.3,m/s\n1,101,4,A,B,C,14.00\n")
        (folder / "junk.lif").write_text("no header here\n")

        def photo_finish() -> list[str]:
            view = problems_view(state(srv))
            return sorted(p["detail"] for p in view["rows"] if p["kind"] == "photo-finish")

        wait_for(lambda: len(photo_finish()) == 2)
        assert photo_finish() == [
            "nothing imported: 007-1-01.lif:1: Heats of Backward 100 m is not drawn yet",
            "nothing imported: junk.lif:1: the first line is not a heat header (event, round, "
            "heat, event name, wind, …)",
        ]
        draw_heats(srv, http)  # the file waiting for its heat is imported by itself
        rr = state(srv).meet.get("b100")
        assert rr is not None
        wait_for(lambda: ("heats", 1) in rr.results)
        wait_for(lambda: len(photo_finish()) == 1)
        (folder / "junk.lif").unlink()
        wait_for(lambda: photo_finish() == [])


def test_only_one_of_two_processes_on_one_log_imports_the_watched_folder(tmp_path: Path) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    db = tmp_path / "m.db"
    with contextlib.ExitStack() as first:
        one = first.enter_context(serve(ev, db, entries(ev), lif_dir=str(folder)))
        wait_for(lambda: one.app.state.lif_watcher.leading)  # type: ignore[attr-defined]
        two = first.enter_context(serve(ev, db, lif_dir=str(folder)))
        watchers = [s.app.state.lif_watcher for s in (one, two)]  # type: ignore[attr-defined]
        wait_for(lambda: any(w.leading for w in watchers))
        leader, standby = sorted(watchers, key=lambda w: not w.leading)
        assert not standby.leading
        with httpx.Client(base_url=one.url) as http:
            draw_heats(one, http)
        two.settle()
        (folder / "007-1-01.lif").write_text(lif(1, heat_rows(state(two), "heats", 1)))
        rr = state(two).meet.get("b100")
        assert rr is not None
        wait_for(lambda: ("heats", 1) in rr.results)
        assert list(leader.imports) == ["007-1-01.lif"] and standby.imports == {}
        assert leader is watchers[0]
        with serve(ev, db, lif_dir=str(folder)) as three:
            first.close()  # the holder stops: another process takes over
            rr = state(three).meet.get("b100")
            assert rr is not None
            wait_for(lambda: three.app.state.lif_watcher.leading)  # type: ignore[attr-defined]
            (folder / "007-1-02.lif").write_text(lif(2, heat_rows(state(three), "heats", 2)))
            wait_for(lambda: ("heats", 2) in rr.results)
            taken = three.app.state.lif_watcher.imports  # type: ignore[attr-defined]
            assert sorted(taken) == ["007-1-01.lif", "007-1-02.lif"]


def test_a_sprinters_page_shows_heat_lane_q_and_the_next_rounds_lane(tmp_path: Path) -> None:
    ev = meet_event()
    with serve(ev, tmp_path / "m.db", entries(ev)) as srv, httpx.Client(base_url=srv.url) as http:
        assert "The Heats are not drawn yet." in http.get("/runners/101").text
        draw_heats(srv, http)
        rr = state(srv).meet.get("b100")
        assert rr is not None
        heats = rr.state("heats").draw
        assert heats is not None
        heat, lane = heats.where("101") or (0, 0)
        page = http.get("/runners/101").text
        assert f"Next: Heats · heat {heat}, lane {lane}." in page
        assert "Heats: start list" in http.get("/races/b100").text  # not "0 / 20 finished"
        assert "Not seen on the course yet" not in page
        for h in (1, 2, 3):
            assert upload(
                srv, http, lif(h, heat_rows(state(srv), "heats", h)), f"{h}.lif"
            ).is_success
        srv.settle()
        final = rr.state("final").draw
        assert final is not None
        winner = heat_rows(state(srv), "heats", heat)[0][1]
        _, f_lane = final.where(winner) or (0, 0)
        card = http.get(f"/api/v1/runners/{winner}").json()["rounds"]
        assert card["next"] == f"Next: Final, lane {f_lane}."
        first = card["rows"][0]
        assert (first["title"], first["place"], first["mark"]) == (
            f"Heats · heat {heat}",
            "1st",
            "Q",
        )
        assert "Final: start list" in http.get("/screen/b100").text
        out = next(b for b in heats.bibs() if b not in final.bibs())
        assert "Not through to the Final." in http.get(f"/runners/{out}").text
        assert upload(srv, http, lif(1, heat_rows(state(srv), "final", 1), round_no=2), "f.lif")
        srv.settle()
        ended = http.get(f"/api/v1/runners/{final.heat(1)[0][0]}").json()["rounds"]["next"]
        assert ended == "Final: 1st in 14.00."


def test_a_restart_does_not_undo_a_correction_of_a_watched_file(tmp_path: Path) -> None:
    ev = meet_event()
    folder = tmp_path / "lynx"
    folder.mkdir()
    db = tmp_path / "m.db"
    with (
        serve(ev, db, entries(ev), lif_dir=str(folder)) as srv,
        httpx.Client(base_url=srv.url) as http,
    ):
        draw_heats(srv, http)
        (folder / "007-1-01.lif").write_text(lif(1, heat_rows(state(srv), "heats", 1, 14_000)))
        rr = state(srv).meet.get("b100")
        assert rr is not None
        wait_for(lambda: ("heats", 1) in rr.results)
        fixed = lif(1, heat_rows(state(srv), "heats", 1, 14_500))  # the judges re-read it
        assert upload(srv, http, fixed, "007-1-01-fixed.lif").json()["results"][0]["status"] == (
            "accepted"
        )
    with serve(ev, db, lif_dir=str(folder)) as again:
        watcher = again.app.state.lif_watcher  # type: ignore[attr-defined]
        wait_for(lambda: "007-1-01.lif" in watcher.imports)  # read again at start
        again.settle()
        rr = state(again).meet.get("b100")
        assert rr is not None
        assert min(m.time_ms or 0 for m in rr.state("heats").marks.values()) == 14_500
