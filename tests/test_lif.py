"""FinishLynx ``.lif`` files and hand-timed lines: what is read, and each bad line reported
with its file and line number while the rest is imported."""

from __future__ import annotations

from meetkit import drawn_state, heat_rows, lif

from livetrack.ingest.heats import import_hand, import_lif
from livetrack.ingest.lif import parse_hand, parse_lif

REAL = (
    "7,1,2,Backward 100m Men Heat 2,-0.4,m/s,LYNX,,,100,13:05:00.000\r\n"
    '1,104,4,"Lete4","Ath4",Club 0,14.031,,14.031,0.152\r\n'
    "2,107,5,Lete7,Ath7,Club 3,1:02.30,,48.27,0.161\r\n"
    "DNF,110,3,Lete10,Ath10,Club 2,DNF,,,0.140\r\n"
    "DQ,113,6,Lete13,Ath13,Club 1,,,,\r\n"
)


def test_a_lif_file_gives_the_heat_and_every_athletes_result() -> None:
    f = parse_lif(REAL, "007-1-02.lif")
    assert f.problems == []
    assert f.header is not None
    assert (f.header.event, f.header.round, f.header.heat) == (7, 1, 2)
    assert f.header.wind == "-0.4 m/s"
    got = [(ln.place, ln.bib, ln.lane, ln.status, ln.time_ms, ln.reaction_ms) for ln in f.lines]
    assert got == [
        (1, "104", 4, "ok", 14_031, 152),
        (2, "107", 5, "ok", 62_300, 161),
        (None, "110", 3, "DNF", None, 140),
        (None, "113", 6, "DQ", None, None),
    ]
    assert f.lines[0].name == "Ath4 Lete4"


def test_each_bad_line_is_reported_with_file_and_line_and_the_rest_is_read() -> None:
    text = (
        "7,1,2,Heat 2,+0.3,m/s\n"
        "1,104,4,A,B,C,14.03\n"
        "2,105\n"  # malformed: too few fields
        "3,106,4,A,B,C,14.20\n"  # lane 4 twice
        "4,107,5,A,B,C,0.00\n"  # a time of 0
        "x,108,6,A,B,C,14.5\n"  # not a place
        "5,109,7,A,B,C,14.60\n"
    )
    f = parse_lif(text, "heat2.lif")
    assert [ln.bib for ln in f.lines] == ["104", "109"]
    assert [str(p) for p in f.problems] == [
        "heat2.lif:3: malformed line: fewer than 7 fields",
        "heat2.lif:4: two athletes in lane 4: bib 104 (line 2) and bib 106",
        "heat2.lif:5: a time of 0 is not a result",
        "heat2.lif:6: place 'X' is not a place (1, 2, … or DNS, DNF, DQ)",
    ]


def test_an_athlete_not_in_that_heat_is_reported_and_the_heat_is_imported_without_them() -> None:
    st = drawn_state()
    rr = st.meet.get("b100")
    assert rr is not None
    draw = rr.state("heats").draw
    assert draw is not None
    rows = heat_rows(st, "heats", 1)
    stranger = draw.heat(2)[0][0]
    rows.append(("9", stranger, None, "15.00", ""))
    got = import_lif(st, lif(1, rows), "h1.lif")
    assert got.record is not None
    assert [r[0] for r in got.record.rows] == [r[1] for r in rows[:-1]]
    assert got.messages == [
        f"h1.lif:{len(rows) + 1}: bib {stranger} is not in heat 1 of Heats (drawn in heat 2)"
    ]


def test_a_file_for_an_unknown_heat_imports_nothing() -> None:
    st = drawn_state()
    rows = heat_rows(st, "heats", 1)
    for kwargs, why in (
        ({"event": 9}, "h.lif:1: unknown heat: no race here has photo-finish event number 9"),
        ({"round_no": 5}, "h.lif:1: unknown heat: Backward 100 m has no round 5"),
        ({"round_no": 2}, "h.lif:1: Final of Backward 100 m is not drawn yet"),
    ):
        got = import_lif(st, lif(1, rows, **kwargs), "h.lif")  # type: ignore[arg-type]
        assert got.record is None and got.messages == [why]
    got = import_lif(st, lif(4, rows), "h.lif")
    assert got.record is None
    assert got.messages == ["h.lif:1: unknown heat: Heats of Backward 100 m has 3 heat(s), "
                            "not heat 4"]  # fmt: skip
    assert import_lif(st, "not,a,header\n", "bad.lif").messages == [
        "bad.lif:1: the first line is not a heat header (event, round, heat, event name, wind, …)"
    ]


def test_hand_timed_lines_make_a_heat_result_too() -> None:
    st = drawn_state()
    rr = st.meet.get("b100")
    assert rr is not None
    draw = rr.state("heats").draw
    assert draw is not None
    (a, la), (b, _), (c, _) = draw.heat(1)[:3]
    assert [ln.bib for ln in parse_hand(f"1 {a} 14.2\n2, {b}, 14.4\nDNF {c}\n").lines] == [
        a, b, c]  # fmt: skip
    got = import_hand(st, "b100", "heats", 1, f"1 {a} 14.2\n2, {b}, 14.4\nDNF {c}\n3 {a} 15\n",
                      by="timer")  # fmt: skip
    assert got.messages == [f"hand-timed:4: bib {a} is on line 1 already"]
    assert got.record is not None and got.record.source == "hand"
    assert got.record.rows[0] == (a, la, 1, "ok", 14_200, None)
