"""Obstacle courses in the fold: judgements, penalties on the finish board, latest wins,
undo, disqualification, and the event file's syntax."""

from __future__ import annotations

import pytest
from obstacle_event import OBSTACLE_TOML, event, gun, judge, person, read

from livetrack.domain.event import ConfigError, load_event_text
from livetrack.domain.obstacles import Penalty, reached
from livetrack.domain.records import Correction, StatusChange, decode, encode
from livetrack.domain.state import PROBLEMS_TOPIC, RaceState, board_topic


def finished(*times: tuple[str, float]) -> RaceState:
    st = RaceState(event())
    for bib, _ in times:
        st.apply(person(bib))
    st.apply(gun())
    for bib, t in times:
        st.apply(read(f"C{bib}", "wall", t / 3))
        st.apply(read(f"C{bib}", "net", t * 2 / 3))
        st.apply(read(f"C{bib}", "finish", t))
    return st


def order(st: RaceState) -> list[tuple[str, int]]:
    return [(bib, ms) for ms, bib in st.boards.top("ocr", "finish", "all", 100)]


def test_the_event_file_gives_each_obstacle_a_penalty_per_outcome() -> None:
    race = event().races["ocr"]
    wall, net = race.obstacles
    assert (wall.point, wall.name) == ("wall", "The Wall")
    assert wall.cleared == Penalty() and wall.failed == Penalty(30.0)
    assert wall.missed == Penalty(dq=True)
    assert net.failed == Penalty(60.0) and net.missed == Penalty(120.0)


@pytest.mark.parametrize(
    ("replace", "where"),
    [
        ('point = "net"', "race[0].obstacles[1].point"),  # a second obstacle at the net
        ('missed = "DQ"', "race[0].obstacles[0].missed"),  # missed left out
        ('failed = "0:30"', "race[0].obstacles[0].failed"),  # not a duration
    ],
)
def test_a_wrong_obstacle_is_refused_naming_its_key(replace: str, where: str) -> None:
    bad = {
        'point = "net"': OBSTACLE_TOML.replace('point = "wall"', 'point = "net"'),
        'missed = "DQ"': OBSTACLE_TOML.replace(', missed = "DQ"', ""),
        'failed = "0:30"': OBSTACLE_TOML.replace('failed = "0:30"', 'failed = "half a minute"'),
    }[replace]
    with pytest.raises(ConfigError) as err:
        load_event_text(bad)
    assert err.value.path == where


def test_an_obstacle_must_be_between_the_start_and_the_finish() -> None:
    text = OBSTACLE_TOML.replace('point = "wall"', 'point = "finish"')
    with pytest.raises(ConfigError, match="between the start and the finish"):
        load_event_text(text)


def test_a_failed_obstacle_adds_its_seconds_to_the_finish_and_reranks() -> None:
    st = finished(("1", 300), ("2", 310))
    assert [b for b, _ in order(st)] == ["1", "2"]
    changed = st.apply(judge("a", "1", "wall", "failed", 110))
    assert order(st) == [("2", 310_000), ("1", 330_000)]
    assert board_topic("ocr", "finish", "all") in changed
    runner = st.runners["1"]
    assert runner.penalty.ms == 30_000 and runner.status == "ok"
    # the raw time is unchanged: only the ranking basis at the finish carries the penalty
    assert st.elapsed(runner, "finish") == 300_000
    assert st.runners["1"].ranked["net"] == 200_000


def test_penalties_of_several_obstacles_add_up_and_cleared_costs_nothing() -> None:
    st = finished(("1", 300), ("2", 400))
    st.apply(judge("a", "1", "wall", "cleared", 100))
    st.apply(judge("b", "1", "net", "failed", 200))
    st.apply(judge("c", "2", "net", "cleared", 270))
    assert order(st) == [("1", 360_000), ("2", 400_000)]
    st.apply(judge("d", "1", "wall", "failed", 101))
    assert order(st) == [("1", 390_000), ("2", 400_000)]
    st.apply(judge("e", "1", "net", "missed", 201))  # latest wins: 2:00 instead of 1:00
    assert order(st) == [("2", 400_000), ("1", 450_000)]


def test_the_latest_judgement_for_a_runner_and_obstacle_replaces_the_earlier() -> None:
    st = finished(("1", 300))
    st.apply(judge("a", "1", "wall", "failed", 100))
    st.apply(judge("b", "1", "wall", "cleared", 105))
    assert order(st) == [("1", 300_000)]
    assert st.runners["1"].judgements["wall"] == [
        ("judgement:judge-a", "failed"),
        ("judgement:judge-b", "cleared"),
    ]


def test_undoing_the_latest_judgement_brings_back_the_one_before() -> None:
    st = finished(("1", 300), ("2", 320))
    st.apply(judge("a", "1", "wall", "failed", 100))
    st.apply(judge("b", "1", "wall", "cleared", 105))
    st.apply(Correction("u1", "undo", target="judgement:judge-b", by="m1"))
    assert order(st) == [("2", 320_000), ("1", 330_000)]
    st.apply(Correction("u2", "undo", target="judgement:judge-a", by="m1"))
    assert order(st) == [("1", 300_000), ("2", 320_000)]
    assert st.runners["1"].penalty.ms == 0 and not st.runners["1"].judgements


def test_a_disqualifying_outcome_takes_the_runner_off_the_boards_with_the_reason() -> None:
    st = finished(("1", 300), ("2", 320))
    st.apply(judge("a", "1", "wall", "missed", 100))
    runner = st.runners["1"]
    assert runner.status == "DQ" and runner.status_reason == "missed The Wall"
    assert [b for b, _ in order(st)] == ["2"]
    assert "1" not in {b for _, b in st.finishers["ocr"]}
    st.apply(judge("b", "1", "wall", "cleared", 110))  # the marshal corrects it
    assert runner.status == "ok" and [b for b, _ in order(st)] == ["1", "2"]


def test_a_status_set_by_the_timer_wins_over_an_obstacle_disqualification() -> None:
    st = finished(("1", 300))
    st.apply(judge("a", "1", "wall", "missed", 100))
    st.apply(StatusChange("s1", "1", "DNF", "retired"))
    assert st.runners["1"].status == "DNF"
    st.apply(Correction("u1", "undo", target="status:s1"))
    assert st.runners["1"].status == "DQ"


def test_a_judgement_at_a_checkpoint_without_an_obstacle_is_a_problem() -> None:
    st = finished(("1", 300))
    changed = st.apply(judge("a", "1", "finish", "failed", 300))
    assert PROBLEMS_TOPIC in changed
    assert st.problems["judgement:judge-a"].kind == "not-an-obstacle"
    assert st.runners["1"].penalty.ms == 0


def test_a_judgement_for_an_unknown_bib_is_a_problem_and_undo_clears_it() -> None:
    st = finished(("1", 300))
    st.apply(judge("a", "99", "wall", "failed", 100))
    assert st.problems["judgement:judge-a"].kind == "unknown-bib"
    st.apply(Correction("u1", "undo", target="judgement:judge-a"))
    assert "judgement:judge-a" not in st.problems


def test_a_judgement_made_before_the_finish_counts_when_the_runner_finishes() -> None:
    st = RaceState(event())
    st.apply(person("1"))
    st.apply(person("2"))
    st.apply(gun())
    st.apply(read("C1", "wall", 100))
    st.apply(judge("a", "1", "wall", "failed", 101))
    st.apply(read("C2", "finish", 310))
    st.apply(read("C1", "finish", 300))
    assert order(st) == [("2", 310_000), ("1", 330_000)]


def test_judgements_survive_a_new_participant_record_for_the_runner() -> None:
    st = finished(("1", 300))
    st.apply(judge("a", "1", "wall", "failed", 100))
    st.apply(person("1", club="Bury AC"))
    assert order(st) == [("1", 330_000)]


def test_a_judgement_record_round_trips_through_the_log_encoding() -> None:
    j = judge("a", "1", "wall", "failed", 100, by="wall marshal #ab12")
    assert decode(encode(j)) == j and j.key == "judgement:judge-a"


def test_reached_means_a_passing_at_the_obstacle_or_after_it() -> None:
    st = RaceState(event())
    st.apply(person("1"))
    st.apply(gun())
    course = event().races["ocr"].course
    assert not reached(course, st.runners["1"].passings, "wall")
    st.apply(read("C1", "net", 200))  # the wall's mat missed the chip
    assert reached(course, st.runners["1"].passings, "wall")
    assert not reached(course, st.runners["1"].passings, "finish")


def test_folding_in_pages_gives_the_same_penalties_as_one_by_one() -> None:
    records = [person("1"), person("2"), gun()]
    records += [read("C1", "wall", 100), judge("a", "1", "wall", "failed", 101)]
    records += [read("C2", "wall", 90), read("C2", "finish", 305), read("C1", "finish", 300)]
    records += [
        judge("b", "2", "wall", "missed", 95),
        Correction("u", "undo", target="judgement:judge-b"),
    ]
    one, many = RaceState(event()), RaceState(event())
    for r in records:
        one.apply(r)
    many.apply_all(records)
    assert order(one) == order(many) == [("2", 305_000), ("1", 330_000)]


def test_a_snapshot_keeps_judgements_and_folds_a_later_undo_the_same() -> None:
    from livetrack.domain import snapshot

    st = finished(("1", 300), ("2", 320))
    st.apply(judge("a", "1", "wall", "failed", 100))
    st.apply(judge("b", "2", "wall", "missed", 101))
    loaded = snapshot.loads(snapshot.dumps(st, "7", "v"), event(), "v")
    assert loaded is not None
    _, back = loaded
    assert order(back) == order(st) == [("1", 330_000)]
    assert back.runners["2"].status_reason == "missed The Wall"
    for state in (st, back):
        state.apply(Correction("u", "undo", target="judgement:judge-b"))
    assert order(back) == order(st) == [("2", 320_000), ("1", 330_000)]
