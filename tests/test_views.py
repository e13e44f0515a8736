"""The runner card's pace chart: the field's median per segment."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from conftest import PATIENCE_S
from factory import GUN, event, gun, person, read
from server import serve

from livetrack.domain.state import RaceState
from livetrack.web import map_views, views


def mile_with_halfway_passings(halves: list[float]) -> RaceState:
    st = RaceState(event())
    for i in range(1, len(halves) + 1):
        st.apply(person(str(i)))
    st.apply(gun())
    for i, half in enumerate(halves, start=1):
        st.apply(read(f"C{i}", "start", 0.5))
        st.apply(read(f"C{i}", "half", half))
    return st


def test_the_field_median_is_the_median_pace_of_the_runners_past_each_segment() -> None:
    st = mile_with_halfway_passings([240.5, 300.5, 360.5])
    half, finish = views.segment_medians(st, "mile")
    # 240, 300 and 360 s over 800 m: the median is 300 s, 375 ms a metre
    assert half == pytest.approx(375.0)
    assert finish is None  # nobody has finished


def test_a_small_race_gets_its_median_within_seconds_not_hundreds_of_records() -> None:
    clock = [0.0]
    medians = views.FieldMedians(clock=lambda: clock[0])
    st = mile_with_halfway_passings([240.5])
    assert medians(st, "mile")[0] == pytest.approx(300.0)
    for i in (2, 3):
        st.apply(person(str(i)))
    st.apply(read("C2", "start", 0.5))
    st.apply(read("C2", "half", 400.5))
    st.apply(read("C3", "start", 0.5))
    st.apply(read("C3", "half", 360.5))
    # a handful of records within the window: the card keeps the last median
    clock[0] = views.MEDIANS_EVERY_S / 2
    assert medians(st, "mile")[0] == pytest.approx(300.0)
    # once the window has passed, the new passings count
    clock[0] = views.MEDIANS_EVERY_S
    assert medians(st, "mile")[0] == pytest.approx(450.0)


def test_each_fold_keeps_its_own_medians() -> None:
    fast, slow = mile_with_halfway_passings([240.5]), mile_with_halfway_passings([480.5])
    one, two = views.FieldMedians(), views.FieldMedians()
    assert one(fast, "mile")[0] == pytest.approx(300.0)
    assert two(slow, "mile")[0] == pytest.approx(600.0)
    card = views.runner(slow, "1", medians=two)
    assert card is not None and card["segments"][0]["median"] == pytest.approx(600.0)


def test_a_race_page_opens_on_the_furthest_checkpoint_anyone_has_reached(
    tmp_path: Path,
) -> None:
    people = [person("1"), person("2")]
    with serve(event(), tmp_path / "log.db", people) as srv, httpx.Client(base_url=srv.url) as http:
        timer = {"authorization": f"Bearer {srv.tokens['timer']}"}
        reader = {"authorization": f"Bearer {srv.tokens['reader']}"}
        page = http.get("/races/mile").text
        assert "Nobody has reached Finish yet" in page  # nothing passed yet: the finish

        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=timer)
        half = {"reader": "r1", "point": "half", "chip": "C1", "time": GUN + 240_000}
        http.post("/api/v1/reads", json=[half], headers=reader).raise_for_status()
        deadline = time.monotonic() + PATIENCE_S
        while "Halfway · Overall" not in (page := http.get("/races/mile").text):
            assert time.monotonic() < deadline, "the page never opened on Halfway"
            time.sleep(0.05)
        assert "First1 Last1" in page

        # asked for, the finish board is still there
        assert "Nobody has reached Finish yet" in http.get("/races/mile?point=finish").text

        done = {"reader": "r1", "point": "finish", "chip": "C1", "time": GUN + 480_000}
        http.post("/api/v1/reads", json=[done], headers=reader).raise_for_status()
        while "Finish · Overall" not in http.get("/races/mile").text:
            assert time.monotonic() < deadline, "the page never moved on to the finish"
            time.sleep(0.05)


def test_static_urls_carry_a_digest_of_the_file_so_an_upgrade_is_never_served_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from livetrack.web import render

    (tmp_path / "app.css").write_text("body { color: black }")
    (tmp_path / "app.js").write_text("// one")
    monkeypatch.setattr(render, "STATIC", tmp_path)
    render.static_version.cache_clear()
    static = render.make_env().globals["static"]
    css, js = static("app.css"), static("app.js")
    assert css.startswith("/static/app.css?v=") and js.startswith("/static/app.js?v=")
    assert css.partition("?v=")[2] != js.partition("?v=")[2]

    (tmp_path / "app.js").write_text("// two")  # the next release, in a new process
    render.static_version.cache_clear()
    static = render.make_env().globals["static"]
    assert static("app.js") != js  # a changed file gets a new URL
    assert static("app.css") == css  # an unchanged one keeps its cached copy
    render.static_version.cache_clear()


def test_every_map_label_of_the_demo_courses_fits_inside_the_map() -> None:
    from livetrack.cli import demo_event

    st = RaceState(demo_event())
    for race in st.event.races:
        m = map_views.course_map(st, race)
        for lab in m["checkpoints"]:
            text = map_views.LETTER_W * max(len(p) for p in lab["name"].split(" / "))
            left = {"end": text, "middle": text / 2, "start": 0}[lab["anchor"]]
            assert lab["tx"] - left >= 0 and lab["tx"] - left + text <= m["width"], (race, lab)
        # the course itself uses most of the width a phone gives it
        xs = [x for x, _, _ in m["points"]]
        assert max(xs) - min(xs) >= 0.6 * m["width"] or len(set(xs)) == 1, race


def test_a_race_nobody_has_moved_in_for_hours_is_over_and_its_clock_stops() -> None:
    st = mile_with_halfway_passings([240.5, 300.5])
    st.apply(read("C1", "finish", 480.5))  # runner 2 stops after halfway and is never seen
    during = views.race_status(st, st.event.races["mile"], GUN + 3600_000)
    assert during["status"] == "running" and during["clock"] == "1:00:00"
    later = views.race_status(st, st.event.races["mile"], GUN + 480_500 + 3 * 3600_000)
    assert later["status"] == "finished"
    assert later["clock"] == "8:00"  # stopped at the last finish (the gun was at 0:00)


def test_a_straight_course_has_its_labels_under_and_over_the_line_by_turns() -> None:
    m = map_views.course_map(RaceState(event()), "mile")  # no polyline: a straight line
    labels = m["checkpoints"]
    assert [lab["name"] for lab in labels] == ["Start", "Halfway", "Finish"]
    assert all(lab["anchor"] == "middle" and lab["tx"] == lab["xy"][0] for lab in labels)
    below, above, below_again = (lab["ty"] - lab["xy"][1] for lab in labels)
    assert below > 0 > above and below_again > 0
    assert all(0 < lab["ty"] < m["height"] for lab in labels)
