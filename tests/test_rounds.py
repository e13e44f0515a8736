"""Rounds: the event file's syntax, seeding into heats, lanes and the qualifying rules."""

from __future__ import annotations

import pytest
from factory import EVENT_TOML
from meetkit import TRACK, meet_event

from livetrack.domain.event import ConfigError, load_event_text
from livetrack.domain.rounds import (
    Advance,
    Mark,
    Round,
    default_groups,
    draw,
    entry_order,
    fmt_track,
    qualify,
    serpentine,
)


def test_the_event_file_declares_heats_and_a_final_with_a_progression_rule() -> None:
    race = meet_event().races["b100"]
    assert race.rounds is not None
    heats, final = race.rounds.rounds
    assert (heats.id, heats.number, heats.heats, heats.advance) == ("heats", 1, 0, Advance(2, 2))
    assert (final.id, final.number, final.heats, final.advance) == ("final", 2, 1, None)
    assert race.rounds.lynx_event == 7
    assert race.rounds.lane_groups() == ((3, 4, 5, 6), (7, 8), (1, 2))


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ('name = "Final"\n', 'name = "Final"\nadvance = { place = 2 }\n', "round[1].advance"),
        ("lanes = 8\n", "lanes = 40\n", "lanes"),
        ('id = "final"', 'id = "heats"', "round[1].id"),
    ],
)
def test_a_wrong_rounds_table_names_the_key(old: str, new: str, where: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_event_text(EVENT_TOML + TRACK.replace(old, new))
    assert err.value.path == f"race[3].rounds.{where}"


def test_more_qualifiers_than_the_final_has_lanes_is_refused() -> None:
    text = TRACK.replace('name = "Heats"', 'name = "Heats"\nheats = 3').replace(
        "{ place = 2, time = 2 }", "{ place = 2, time = 3 }"
    )
    with pytest.raises(ConfigError, match="sends 9 on to 1 heat"):
        load_event_text(EVENT_TOML + text)


def test_serpentine_deals_the_fastest_across_the_heats_and_back() -> None:
    heats = serpentine([str(i) for i in range(1, 8)], 3)
    assert heats == [["1", "6", "7"], ["2", "5"], ["3", "4"]]


def test_entry_order_is_by_entry_time_with_no_time_last() -> None:
    order = entry_order([("a", 12_300), ("b", None), ("c", 11_900), ("d", 12_000)], "x")
    assert order == ["c", "d", "a", "b"]


def test_a_later_round_puts_the_best_four_in_lanes_3_to_6_by_lot() -> None:
    rounds = meet_event().races["b100"].rounds
    assert rounds is not None
    ranked = [f"b{i}" for i in range(1, 9)]
    d = draw(rounds, "final", ranked, "seed-a", first=False)
    lane = {b: ln for b, _, ln in d.seats}
    assert {lane[b] for b in ranked[:4]} == {3, 4, 5, 6}
    assert {lane[b] for b in ranked[4:6]} == {7, 8}
    assert {lane[b] for b in ranked[6:]} == {1, 2}
    other = draw(rounds, "final", ranked, "seed-b", first=False)
    assert draw(rounds, "final", ranked, "seed-a", first=False) == d
    assert any(lane[b] != ln for b, _, ln in other.seats)  # another seed, another lot


def test_a_first_round_fills_the_central_lanes_of_a_short_heat() -> None:
    rounds = meet_event().races["b100"].rounds
    assert rounds is not None
    d = draw(rounds, "heats", [f"b{i}" for i in range(1, 16)], "s", first=True)
    assert d.heats == 2
    short = min((d.heat(1), d.heat(2)), key=len)
    assert sorted(ln for _, ln in short) == [1, 3, 4, 5, 6, 7, 8]  # 7 of 8: lane 2 free
    assert default_groups(6) == ((3, 4, 5), (6,), (1, 2))


def _mark(bib: str, heat: int, place: int, ms: int) -> Mark:
    return Mark(bib, heat, None, place, "ok", ms)


HEATS = Round("heats", "Heats", 1, 0, Advance(2, 2))


def test_first_two_of_each_heat_are_Q_and_the_next_two_fastest_q() -> None:
    marks = [
        _mark("a1", 1, 1, 14_000), _mark("a2", 1, 2, 14_100), _mark("a3", 1, 3, 14_150),
        _mark("b1", 2, 1, 14_300), _mark("b2", 2, 2, 14_400), _mark("b3", 2, 3, 14_120),
        _mark("b4", 2, 4, 14_500), Mark("a4", 1, None, None, "DNF", None),
    ]  # fmt: skip
    got = qualify(HEATS, marks, 2, 8, "s")
    assert got.marks == {"a1": "Q", "a2": "Q", "b1": "Q", "b2": "Q", "b3": "q", "a3": "q"}
    assert got.order == ("a1", "b1", "a2", "b2", "b3", "a3")


def test_thousandths_separate_a_tie_in_hundredths() -> None:
    marks = [_mark("a1", 1, 1, 14_000), _mark("a2", 1, 2, 14_100),
             _mark("x", 1, 3, 14_121), _mark("y", 1, 4, 14_129)]  # fmt: skip
    got = qualify(Round("heats", "Heats", 1, 0, Advance(2, 1)), marks, 1, 8, "s")
    assert fmt_track(14_121) == fmt_track(14_129) == "14.13"
    assert got.marks.get("x") == "q" and "y" not in got.marks


def test_a_dead_heat_for_the_last_q_goes_through_when_there_are_lanes() -> None:
    marks = [_mark("a1", 1, 1, 14_000), _mark("a2", 1, 2, 14_100),
             _mark("x", 1, 3, 14_200), _mark("y", 1, 4, 14_200)]  # fmt: skip
    rnd = Round("heats", "Heats", 1, 0, Advance(2, 1))
    assert qualify(rnd, marks, 1, 8, "s").marks == {"a1": "Q", "a2": "Q", "x": "q", "y": "q"}


def test_a_dead_heat_without_a_lane_is_decided_by_lot_or_by_the_timers_lots() -> None:
    marks = [_mark("a1", 1, 1, 14_000), _mark("a2", 1, 2, 14_100),
             _mark("x", 1, 3, 14_200), _mark("y", 1, 4, 14_200)]  # fmt: skip
    rnd = Round("heats", "Heats", 1, 0, Advance(2, 1))
    got = qualify(rnd, marks, 1, 3, "s")
    winner = next(b for b in ("x", "y") if b in got.marks)
    loser = "y" if winner == "x" else "x"
    assert got.by_lot == {winner} and got.lost_lot == {loser}
    assert qualify(rnd, marks, 1, 3, "s") == got  # the same lot every time
    by_hand = qualify(rnd, marks, 1, 3, "s", lot_winners=[loser])
    assert by_hand.marks.get(loser) == "q" and winner not in by_hand.marks
    assert by_hand.by_lot == frozenset()


def test_track_times_show_hundredths_rounded_up() -> None:
    assert (fmt_track(10_521), fmt_track(10_520), fmt_track(62_341)) == ("10.53", "10.52",
                                                                         "1:02.35")  # fmt: skip
