"""The fold and every read rule: plain functions, no I/O (and how the fold's signals reach
the live regions that depend on them)."""

from __future__ import annotations

from factory import GUN, event, gun, person, read

from livetrack.domain.records import (
    ChipAssign,
    Correction,
    Sighting,
    StatusChange,
)
from livetrack.domain.state import (
    UNMATCHED_TOPIC,
    RaceState,
    board_topic,
    feed_topic,
    parse_shift,
    runner_topic,
    shift_topic,
)
from livetrack.web import features


def state_with(*bibs: str, race: str = "mile", **kw: object) -> RaceState:
    st = RaceState(event())
    for b in bibs:
        st.apply(person(b, race, **kw))
    return st


def finish_order(st: RaceState, race: str = "mile") -> list[str]:
    return [bib for _, bib in st.boards.top(race, "finish", "all", 100)]


def test_finish_read_makes_a_passing_with_gun_time_and_ranks_it() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    changed = st.apply(read("C2", "finish", 500))
    st.apply(read("C1", "finish", 520))
    assert finish_order(st) == ["2", "1"]
    assert st.elapsed(st.runners["2"], "finish") == 500_000
    assert board_topic("mile", "finish", "all") in changed
    assert feed_topic("mile") in changed and runner_topic("2") in changed


def test_late_read_reranks_the_board() -> None:
    st = state_with("1", "2", "3")
    st.apply(gun())
    st.apply(read("C1", "finish", 500))
    st.apply(read("C2", "finish", 510))
    st.apply(read("C3", "finish", 490))  # arrives last, finished first
    assert finish_order(st) == ["3", "1", "2"]
    assert st.position(st.runners["1"], "finish") == 2


def test_reads_before_the_gun_are_ignored_until_the_gun_comes() -> None:
    st = state_with("1")
    st.apply(read("C1", "finish", -30))  # the gun is at 0, scheduled start unknown
    st.apply(read("C1", "finish", 400))
    assert finish_order(st) == []  # no gun yet: no elapsed time to rank by
    st.apply(gun())
    assert st.runners["1"].passings["finish"].time_ms == GUN + 400_000


def test_second_read_within_window_is_a_duplicate() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "half", 200))
    changed = st.apply(read("C1", "half", 203))
    assert changed == set()
    assert st.runners["1"].passings["half"].time_ms == GUN + 200_000


def test_first_read_counts_at_a_split_even_when_it_arrives_second() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "half", 203))
    st.apply(read("C1", "half", 200))
    assert st.runners["1"].passings["half"].time_ms == GUN + 200_000


def test_last_read_counts_at_the_start_mat_and_gives_chip_time() -> None:
    st = state_with("1", race="chip")
    st.apply(gun("chip"))
    st.apply(read("C1", "start", 2))
    st.apply(read("C1", "start", 6))  # still on the mat: the last read is the start
    st.apply(read("C1", "finish", 506))
    r = st.runners["1"]
    assert r.passings["start"].time_ms == GUN + 6000
    assert st.elapsed(r, "finish", "chip") == 500_000
    assert st.elapsed(r, "finish", "gun") == 506_000
    assert r.ranked["finish"] == 500_000  # the chip race ranks by chip time


def test_implausibly_fast_passing_is_ignored() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "half", 100))  # 800 m in 100 s at most 4 m/s is fine (>= 200 s? no)
    assert "half" not in st.runners["1"].passings  # 800 m / 4 m/s = 200 s minimum
    st.apply(read("C1", "half", 250))
    assert st.runners["1"].passings["half"].time_ms == GUN + 250_000


def test_minimum_time_is_measured_from_the_previous_passing() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "half", 300))
    st.apply(read("C1", "finish", 400))  # 800 m in 100 s: impossible
    assert "finish" not in st.runners["1"].passings
    st.apply(read("C1", "finish", 600))
    assert st.runners["1"].passings["finish"].time_ms == GUN + 600_000


def test_backup_stream_counts_only_where_main_has_no_passing() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    st.apply(read("C1", "finish-b", 499))
    st.apply(read("C1", "finish", 500))
    st.apply(read("C2", "finish-b", 510))  # main missed runner 2
    assert st.runners["1"].passings["finish"].time_ms == GUN + 500_000
    assert st.runners["1"].passings["finish"].source == "chip"
    assert st.runners["2"].passings["finish"].source == "backup"
    assert finish_order(st) == ["1", "2"]


def test_a_reader_configured_as_backup_feeds_the_backup_stream() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "finish", 480, reader="spare"))  # reader role = backup
    st.apply(read("C1", "finish", 500, reader="main-mat"))
    assert st.runners["1"].passings["finish"].time_ms == GUN + 500_000


def test_reader_clock_offset_is_applied() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "half", 300, reader="slow-clock"))  # configured +2000 ms
    assert st.runners["1"].passings["half"].time_ms == GUN + 302_000


def test_a_mat_passed_twice_feeds_each_lap_in_turn() -> None:
    st = RaceState(event())
    st.apply(person("9", "loop"))
    st.apply(gun("loop"))
    st.apply(read("C9", "line", 400))
    st.apply(read("C9", "line", 402))
    st.apply(read("C9", "finish", 820))
    assert st.runners["9"].passings["lap1"].time_ms == GUN + 400_000
    assert st.runners["9"].passings["finish"].time_ms == GUN + 820_000


def test_wave_gun_is_the_race_gun_plus_the_wave_offset() -> None:
    st = RaceState(event())
    st.apply(person("1", wave="A"))
    st.apply(person("2", wave="B"))
    st.apply(gun())
    st.apply(read("C1", "finish", 500))
    st.apply(read("C2", "finish", 540))  # wave B went 60 s later: 480 s
    assert finish_order(st) == ["2", "1"]
    assert st.elapsed(st.runners["2"], "finish") == 480_000


def test_a_gun_pressed_late_is_corrected_by_a_later_gun_record() -> None:
    st = state_with("1")
    st.apply(gun(at_s=5))
    st.apply(read("C1", "finish", 500))
    assert st.elapsed(st.runners["1"], "finish") == 495_000
    st.apply(gun(at_s=0))
    assert st.elapsed(st.runners["1"], "finish") == 500_000


def test_unmatched_chip_is_kept_and_processed_when_assigned() -> None:
    st = state_with("1")
    st.apply(gun())
    changed = st.apply(read("X99", "finish", 450))
    assert UNMATCHED_TOPIC in changed and st.unmatched == {"X99": 1}
    st.apply(ChipAssign("a1", "X99", "1"))
    assert st.unmatched == {}
    assert st.runners["1"].passings["finish"].time_ms == GUN + 450_000
    assert finish_order(st) == ["1"]


def test_a_late_participant_picks_up_reads_of_their_chip() -> None:
    st = RaceState(event())
    st.apply(gun())
    st.apply(read("C5", "finish", 470))
    st.apply(person("5"))
    assert finish_order(st) == ["5"]


def test_divisions_rank_women_men_and_categories_apart() -> None:
    st = RaceState(event())
    st.apply(person("1", gender="F", age=42))
    st.apply(person("2", gender="M", age=23))
    st.apply(person("3", gender="F", age=25))
    st.apply(gun())
    for bib, t in (("1", 500), ("2", 480), ("3", 510)):
        st.apply(read(f"C{bib}", "finish", t))
    assert [b for _, b in st.boards.top("mile", "finish", "F", 10)] == ["1", "3"]
    assert [b for _, b in st.boards.top("mile", "finish", "FV40", 10)] == ["1"]
    assert st.runners["1"].category == "FV40" and st.runners["2"].category == "MSEN"
    assert st.position(st.runners["3"], "finish", "F") == 2


def test_void_correction_removes_a_passing_and_undo_restores_it() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    st.apply(read("C1", "finish", 500))
    st.apply(read("C2", "finish", 510))
    st.apply(Correction("c1", "void", bib="1", point="finish", reason="wrong runner"))
    assert finish_order(st) == ["2"]
    st.apply(Correction("c2", "undo", target="correction:c1"))
    assert finish_order(st) == ["1", "2"]


def test_edit_and_add_corrections_set_the_time() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    st.apply(read("C1", "finish", 500))
    st.apply(Correction("c1", "edit", bib="1", point="finish", time_ms=GUN + 520_000))
    st.apply(Correction("c2", "add", bib="2", point="finish", time_ms=GUN + 515_000))
    assert finish_order(st) == ["2", "1"]
    assert st.runners["2"].passings["finish"].source == "corrected"


def test_disqualified_runner_leaves_the_boards_and_dnf_has_no_finish_rank() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    st.apply(read("C1", "half", 250))
    st.apply(read("C1", "finish", 500))
    st.apply(read("C2", "finish", 510))
    st.apply(StatusChange("s1", "1", "DQ", "cut the course"))
    assert finish_order(st) == ["2"]
    assert st.boards.count("mile", "half", "all") == 0
    st.apply(StatusChange("s2", "2", "DNF"))
    assert finish_order(st) == []
    st.apply(Correction("u1", "undo", target="status:s1"))
    assert finish_order(st) == ["1"]


def test_marshal_sighting_alone_makes_a_manual_passing_and_confirms_a_chip_one() -> None:
    st = state_with("1", "2")
    st.apply(gun())
    st.apply(Sighting("u-1", "half", "1", GUN + 260_000))
    st.apply(read("C2", "half", 250))
    st.apply(Sighting("u-2", "half", "2", GUN + 262_000))
    assert st.runners["1"].passings["half"].source == "manual"
    p2 = st.runners["2"].passings["half"]
    assert p2.source == "chip" and p2.time_ms == GUN + 250_000 and p2.confirmed


def test_sighting_of_an_unknown_bib_is_a_problem_not_a_passing() -> None:
    st = state_with("1")
    st.apply(Sighting("u-9", "half", "999", GUN))
    assert [p.kind for p in st.problems.values()] == ["unknown-bib"]


def test_hidden_name_shows_as_runner_and_bib() -> None:
    st = RaceState(event())
    st.apply(person("7", hide_name=True))
    assert st.runners["7"].name == "Runner 7"


def test_same_records_in_same_order_give_same_state() -> None:
    records = [
        person("1"),
        person("2"),
        gun(),
        read("C1", "finish", 500),
        read("C2", "finish", 490),
    ]
    a, b = RaceState(event()), RaceState(event())
    a.apply_all(records)
    b.apply_all(records)
    assert finish_order(a) == finish_order(b) == ["2", "1"]


def test_a_late_start_read_makes_a_too_early_finish_read_no_longer_count() -> None:
    st = state_with("1")
    st.apply(gun())
    st.apply(read("C1", "finish", 420))  # 1600 m in 7:00 from the gun: plausible
    assert st.runners["1"].passings["finish"].time_ms == GUN + 420_000
    st.apply(read("C1", "start", 30))  # the start mat's read arrives late: they set off at 0:30
    assert "finish" not in st.runners["1"].passings  # 1600 m in 6:30 is faster than 4 m/s
    assert finish_order(st) == []
    st.apply(read("C1", "finish", 460))
    assert st.runners["1"].passings["finish"].time_ms == GUN + 460_000


def test_a_late_passing_ahead_of_others_signals_that_their_positions_shifted() -> None:
    st = state_with("1", "2", "3")
    st.apply(gun())
    st.apply(read("C1", "finish", 500))
    in_order = st.apply(read("C2", "finish", 510))  # behind everyone: nobody else moves
    assert not [t for t in in_order if t.startswith("shift:")]
    late = st.apply(read("C3", "finish", 490))  # ahead of 1 and 2: both drop a place
    assert shift_topic("mile", "finish", 490_000) in late
    assert parse_shift(shift_topic("mile", "finish", 490_000)) == ("mile", "finish", 490_000)


def test_shifted_runner_cards_that_someone_watches_are_redrawn() -> None:
    st = state_with("1", "2", "3", "4")
    st.apply(gun())
    for bib, at in (("1", 500), ("2", 510), ("4", 480)):
        st.apply(read(f"C{bib}", "finish", at))
    renderer = features.renderer(st)
    late = st.apply(read("C3", "finish", 495))  # between 4 and 1
    watched = {"runner:1", "runner:2", "runner:4", "board:mile:finish:all"}
    redrawn = renderer.derive(late, watched)
    assert {"runner:1", "runner:2", "runner:3"} <= redrawn  # 3's own card changed anyway
    assert "runner:4" not in redrawn  # ahead of the late passing: same place as before
