"""The course record watch: on-pace runners from the expected-time seam; a new record."""

from __future__ import annotations

from factory import event, gun, person, read

from livetrack.domain.records import Correction
from livetrack.domain.records_watch import record_watch
from livetrack.domain.state import RaceState


def _state() -> RaceState:
    st = RaceState(event())  # the mile: record 6:58 (418 s), 1600 m, halfway at 800 m
    for bib in ("1", "2", "3"):
        st.apply(person(bib, "mile", wave="A"))
    st.apply(gun("mile"))
    return st


def test_runner_ahead_of_record_pace_at_halfway_is_on_pace_and_a_slow_one_is_not() -> None:
    st = _state()
    st.apply(read("C1", "half", 201))  # 3:21 at halfway: record pace is about 3:29
    st.apply(read("C2", "half", 260))  # 4:20: far outside; runner 3 has no split yet
    w = record_watch(st, "mile")
    assert w is not None and w.new_record is None
    assert [p.bib for p in w.on_pace] == ["1"]
    fast = w.on_pace[0]
    assert fast.low_ms < 418_000 and fast.chance == (fast.expected_ms >= 418_000)


def test_finish_under_the_record_flips_the_watch_to_the_new_record() -> None:
    st = _state()
    st.apply(read("C1", "half", 201))
    st.apply(read("C1", "finish", 411))
    w = record_watch(st, "mile")
    assert w is not None and w.new_record == ("1", "First1 Last1", 411_000)
    assert w.on_pace == ()


def test_equalling_the_record_is_not_a_new_record_and_a_voided_finish_flips_it_back() -> None:
    st = _state()
    st.apply(read("C2", "finish", 418))
    w = record_watch(st, "mile")
    assert w is not None and w.new_record is None and w.best_ms == 418_000
    st.apply(read("C1", "finish", 415))
    assert record_watch(st, "mile").new_record is not None  # type: ignore[union-attr]
    st.apply(Correction("c1", "void", bib="1", point="finish"))
    assert record_watch(st, "mile").new_record is None  # type: ignore[union-attr]


def test_race_without_a_course_record_has_no_watch() -> None:
    assert record_watch(_state(), "loop") is None
