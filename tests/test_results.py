"""Official results: the pure tables, and the HTML, CSV and JSON a browser downloads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
from factory import GUN, event, gun, person, read
from server import serve

from livetrack.domain import results as res
from livetrack.domain.predict import Predictor
from livetrack.domain.records import ChipRead, StatusChange
from livetrack.domain.state import RaceState


def finished_race() -> RaceState:
    st = RaceState(event())
    st.apply(person("1", gender="M", club="=HYPERLINK(1)"))
    st.apply(person("2", gender="F"))
    for bib in ("3", "4", "5"):
        st.apply(person(bib, gender="M"))
    st.apply(gun())
    for bib, start, half, finish in [("1", 3, 210, 430), ("2", 1, 205, 425), ("3", 2, 220, None)]:
        st.apply(read(f"C{bib}", "start", start))
        st.apply(read(f"C{bib}", "half", half))
        if finish is not None:
            st.apply(read(f"C{bib}", "finish", finish))
    st.apply(StatusChange("x3", "3", "DNF", "knee"))
    st.apply(StatusChange("x4", "4", "DNS"))
    return st


def test_table_orders_finishers_then_runners_out_then_dnf_and_dns() -> None:
    t = res.table(finished_race(), "mile")
    assert [(r.bib, r.status, r.position) for r in t.rows] == [
        ("2", "finished", 1),
        ("1", "finished", 2),
        ("5", "running", None),
        ("3", "DNF", None),
        ("4", "DNS", None),
    ]
    first = t.rows[0]
    assert first.gun_ms == 425_000 and first.chip_ms == 424_000
    assert first.splits == (204_000, 424_000)


def test_category_table_ranks_within_the_category() -> None:
    st = finished_race()
    t = res.table(st, "mile", "F")
    assert [(r.bib, r.position) for r in t.rows] == [("2", 1)]


def test_csv_has_the_documented_columns_and_cannot_run_formulas() -> None:
    text = res.to_csv(res.table(finished_race(), "mile"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [*res.CSV_COLUMNS, "split_half", "split_finish"]
    by_bib = {r["bib"]: r for r in rows}
    assert by_bib["2"]["position"] == "1" and by_bib["2"]["chip_time"] == "0:07:04"
    assert by_bib["2"]["gun_time"] == "0:07:05" and by_bib["2"]["split_half"] == "0:03:24"
    assert by_bib["1"]["club"] == "'=HYPERLINK(1)"
    assert by_bib["3"]["status"] == "DNF" and by_bib["3"]["split_finish"] == ""


def test_csv_loads_as_next_years_predictor_history() -> None:
    text = res.to_csv(res.table(finished_race(), "mile"))
    history = res.history_from_csv(text, ["half", "finish"])
    assert sorted(history, key=lambda h: h[0] or 0) == [
        [204.0, 424.0],
        [207.0, 427.0],
        [218.0, None],
    ]
    p = Predictor(checkpoints=[("half", 800.0), ("finish", 1600.0)], history=history)
    p.observe("new", "half", 205.0)
    estimate = p.estimate("new", "finish")
    assert estimate is not None and 300 < estimate.seconds < 600


def test_results_pages_serve_html_csv_and_json(tmp_path: Path) -> None:
    people = [person("1", first_name="<b>Ada</b>"), person("2")]
    seed_reads = [
        ChipRead("r1", "finish", "C1", GUN + 430_000),
        ChipRead("r1", "finish", "C2", GUN + 440_000),
    ]
    with serve(event(), tmp_path / "log.db", people) as srv, httpx.Client(base_url=srv.url) as http:
        t = {"authorization": f"Bearer {srv.tokens['timer']}"}
        http.post("/api/v1/races/mile/gun", json={"time": GUN}, headers=t)
        reads = [
            {"reader": r.reader, "point": r.point, "chip": r.chip, "time": r.time_ms}
            for r in seed_reads
        ]
        http.post(
            "/api/v1/reads", json=reads, headers={"authorization": f"Bearer {srv.tokens['reader']}"}
        )
        for _ in range(300):
            data = http.get("/results/mile.json").json()
            if data["results"][0]["status"] == "finished" and data["results"][1]["gun_time"]:
                break
        assert [r["bib"] for r in data["results"]] == ["1", "2"]
        assert data["results"][0]["splits"] == {"half": None, "finish": 430_000}
        page = http.get("/results/mile")
        assert page.status_code == 200 and "&lt;b&gt;Ada&lt;/b&gt;" in page.text
        assert "<b>Ada</b>" not in page.text and "marshal.css" in page.text
        assert "0:07:10" in page.text
        got = http.get("/results/mile.csv")
        assert got.headers["content-type"].startswith("text/csv")
        assert "attachment" in got.headers["content-disposition"]
        assert got.text.splitlines()[0].startswith("position,bib,name")
        assert http.get("/results/nope.csv").status_code == 404
        assert http.get("/results/mile.xml").status_code == 404
