"""The fold of a race run in rounds: the heats drawn from the log's seed, results in, the
final drawn by itself, a re-exported heat replacing the earlier one, the timer's changes."""

from __future__ import annotations

from dataclasses import replace

from factory import EVENT_TOML
from meetkit import TRACK, drawn_state, entries, heat_rows, lif, meet_event

from livetrack.domain.event import load_event_text
from livetrack.domain.meet_records import DrawRound, HeatResult, RoundAdjust
from livetrack.domain.records import decode, encode
from livetrack.domain.snapshot import dumps, loads
from livetrack.domain.state import RaceState, race_topic
from livetrack.ingest.heats import import_lif


def _import_heat(st: RaceState, heat: int, base_ms: int = 14_000) -> HeatResult:
    got = import_lif(st, lif(heat, heat_rows(st, "heats", heat, base_ms)), f"h{heat}.lif")
    assert got.problems == [] and got.record is not None
    st.apply(got.record)
    return got.record


def _final(st: RaceState) -> list[tuple[str, int]]:
    rr = st.meet.get("b100")
    assert rr is not None
    d = rr.state("final").draw
    return [] if d is None else d.heat(1)


def test_the_heats_are_drawn_from_the_entries_and_the_seed_in_the_log() -> None:
    st = drawn_state("seed-1")
    rr = st.meet.get("b100")
    assert rr is not None
    heats = rr.state("heats").draw
    assert heats is not None and heats.heats == 3
    assert sorted(len(heats.heat(h)) for h in (1, 2, 3)) == [6, 7, 7]
    # seeded serpentine: the three fastest entries lead one heat each
    assert {heats.where(b)[0] for b in ("101", "102", "103")} == {1, 2, 3}  # type: ignore[index]
    again = drawn_state("seed-1").meet.get("b100")
    assert again is not None and again.state("heats").draw == heats
    other = drawn_state("seed-2").meet.get("b100")
    assert other is not None and other.state("heats").draw != heats


def test_the_final_is_drawn_when_the_last_heat_is_in_and_not_before() -> None:
    st = drawn_state()
    _import_heat(st, 1, 14_000)
    _import_heat(st, 2, 14_050)
    assert _final(st) == []
    changed = st.apply(_import_heat_record(st, 3, 14_020))
    assert race_topic("b100") in changed
    final = _final(st)
    assert len(final) == 8
    rr = st.meet.get("b100")
    assert rr is not None
    q = rr.state("heats").qualified
    assert q is not None
    assert sorted(q.marks.values()).count("Q") == 6 and sorted(q.marks.values()).count("q") == 2
    winners = {b for b, m in q.marks.items() if m == "Q"}
    lanes = dict(final)
    # the three heat winners are among the four best ranked: lanes 3 to 6
    heat_winners = {b for b in winners if rr.state("heats").marks[b].place == 1}
    assert {lanes[b] for b in heat_winners} <= {3, 4, 5, 6}


def _import_heat_record(st: RaceState, heat: int, base_ms: int) -> HeatResult:
    got = import_lif(st, lif(heat, heat_rows(st, "heats", heat, base_ms)), f"h{heat}.lif")
    assert got.record is not None
    return got.record


def test_a_reexported_heat_replaces_the_earlier_file_and_the_final_is_drawn_again() -> None:
    st = drawn_state()
    for h, base in ((1, 14_000), (2, 14_050), (3, 14_020)):
        _import_heat(st, h, base)
    before = _final(st)
    rows = heat_rows(st, "heats", 3, 14_020)
    rows[0], rows[-1] = (rows[0][0], rows[-1][1], rows[-1][2], rows[0][3], rows[0][4]), (
        rows[-1][0], rows[0][1], rows[0][2], rows[-1][3], rows[-1][4])  # fmt: skip
    fixed = import_lif(st, lif(3, rows), "h3.lif")
    assert fixed.record is not None
    st.apply(fixed.record)
    rr = st.meet.get("b100")
    assert rr is not None
    assert len([k for k in rr.results if k[0] == "heats"]) == 3
    assert rr.state("heats").marks[rows[0][1]].place == 1
    assert _final(st) != before and len(_final(st)) == 8
    # the same file again is the same record: its key is its content
    copy = import_lif(st, lif(3, rows), "h3-copy.lif").record
    assert copy is not None and copy.key == fixed.record.key
    assert fixed.record.key == replace(fixed.record, source="x", at_ms=5).key


def test_once_the_final_has_a_result_its_draw_stands() -> None:
    st = drawn_state()
    for h, base in ((1, 14_000), (2, 14_050), (3, 14_020)):
        _import_heat(st, h, base)
    final = _final(st)
    rows = [(str(i), b, ln, f"13.{900 + i}", "") for i, (b, ln) in enumerate(final, start=1)]
    got = import_lif(st, lif(1, rows, round_no=2), "final.lif")
    assert got.problems == [] and got.record is not None
    st.apply(got.record)
    other = import_lif(st, lif(3, heat_rows(st, "heats", 3, 15_000)), "h3b.lif")
    assert other.record is not None
    st.apply(other.record)
    assert _final(st) == final


def test_a_late_scratch_leaves_the_lane_empty_and_undo_puts_them_back() -> None:
    st = drawn_state()
    for h, base in ((1, 14_000), (2, 14_050), (3, 14_020)):
        _import_heat(st, h, base)
    final = _final(st)
    bib, lane = final[0]
    scratch = RoundAdjust("adj-000001", "b100", "final", "scratch", bib, reason="injured",
                          by="timer")  # fmt: skip
    st.apply(scratch)
    assert (bib, lane) not in _final(st) and len(_final(st)) == 7
    st.apply(RoundAdjust("adj-000002", "b100", "final", "undo", target=scratch.key, by="timer"))
    assert _final(st) == final


def test_a_result_for_a_round_not_drawn_is_a_problem_not_a_crash() -> None:
    ev = meet_event()
    st = RaceState(ev)
    st.apply_all(entries(ev))
    rec = HeatResult("b100", "final", 1, (("101", 4, 1, "ok", 13_900, None),), "hand")
    st.apply(rec)
    assert "not drawn yet" in st.problems[rec.key].detail
    st.apply(DrawRound("d-unknown-1", "mile", "heats", "s"))
    assert "not run in rounds" in st.problems["draw:mile:heats:d-unknown-1"].detail


def test_meet_records_survive_encoding_and_a_snapshot() -> None:
    st = drawn_state()
    rec = _import_heat(st, 1)
    assert decode(encode(rec)) == rec
    adj = RoundAdjust("adj-000003", "b100", "heats", "lot", "104", by="t")
    assert decode(encode(adj)) == adj
    restored = loads(dumps(st, "7", "v1"), st.event, "v1")
    assert restored is not None
    rr, rr2 = st.meet.get("b100"), restored[1].meet.get("b100")
    assert rr is not None and rr2 is not None
    assert rr2.state("heats").draw == rr.state("heats").draw
    assert rr2.state("heats").marks == rr.state("heats").marks
    _import_heat(restored[1], 2)
    _import_heat(restored[1], 3, 14_020)
    _import_heat(st, 2)
    _import_heat(st, 3, 14_020)
    assert _final(restored[1]) == _final(st) != []


SEMIS = TRACK.replace(
    '[[race.rounds.round]]\nid = "final"',
    '[[race.rounds.round]]\nid = "semi"\nname = "Semi-finals"\nheats = 2\n'
    "advance = { place = 4 }\n\n"
    '[[race.rounds.round]]\nid = "final"',
).replace("{ place = 2, time = 2 }", "{ place = 4, time = 4 }")


def test_semi_finals_are_seeded_in_a_serpentine_and_send_the_first_four_to_the_final() -> None:
    ev = load_event_text(EVENT_TOML + SEMIS)
    st = RaceState(ev)
    st.apply_all(entries(ev))
    st.apply(DrawRound("draw-semis-1", "b100", "heats", "s"))
    for h, base in ((1, 14_000), (2, 14_050), (3, 14_020)):
        _import_heat(st, h, base)
    rr = st.meet.get("b100")
    assert rr is not None
    semi = rr.state("semi").draw
    assert semi is not None and semi.heats == 2 and len(semi.seats) == 16
    q = rr.state("heats").qualified
    assert q is not None
    # dealt 1, 2, 2, 1: the best and the fourth ranked meet in one semi, 2 and 3 in the other
    heat_of = {b: h for b, h, _ in semi.seats}
    one, two, three, four = q.order[:4]
    assert heat_of[one] == heat_of[four] != heat_of[two] == heat_of[three]
    assert rr.state("final").draw is None
    for h in (1, 2):
        rows = heat_rows(st, "semi", h, 13_900 + h * 10)
        got = import_lif(st, lif(h, rows, round_no=2), f"s{h}.lif")
        assert got.problems == [] and got.record is not None
        st.apply(got.record)
    final = rr.state("final").draw
    assert final is not None and len(final.seats) == 8
    winners = {b for b, m in (rr.state("semi").qualified or q).marks.items() if m == "Q"}
    assert winners == final.bibs()


def test_the_lines_a_result_left_out_are_listed_until_a_new_file_replaces_it() -> None:
    st = drawn_state()
    rows = heat_rows(st, "heats", 1)
    bad = import_lif(st, lif(1, rows) + "9,999\r\n", "h1.lif")
    assert bad.record is not None
    st.apply(bad.record)
    listed = [p for p in st.problems.values() if "h1.lif" in p.detail]
    assert [p.detail for p in listed] == [
        f"h1.lif:{len(rows) + 2}: malformed line: fewer than 7 fields"
    ]
    assert listed[0].key == ""  # the result counts: there is nothing to undo, only to re-import
    good = import_lif(st, lif(1, heat_rows(st, "heats", 1, 14_100)), "h1-fixed.lif")
    assert good.record is not None and good.problems == []
    st.apply(good.record)
    assert [p for p in st.problems.values() if "h1.lif" in p.detail] == []
