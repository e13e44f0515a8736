"""What a race clock says in the page as served: honest before (or without) the script that
ticks it."""

from __future__ import annotations

from factory import GUN, event

from livetrack.web.render import race_clock, time_of

EVENT = event()
MIN = 60_000


def test_a_running_race_says_when_it_started_and_how_long_before_the_page_loaded() -> None:
    started = time_of(EVENT, GUN, seconds=False)
    assert race_clock(EVENT, GUN, None, GUN + 14 * MIN + 20_000) == (
        f"started {started}, 14 min before this page loaded"
    )
    assert race_clock(EVENT, GUN, None, GUN + 20_000) == (
        f"started {started}, under a minute before this page loaded"
    )
    assert race_clock(EVENT, GUN, None, GUN + 75 * MIN).endswith(
        ", 1 h 15 min before this page loaded"
    )


def test_a_pushed_clock_does_not_change_with_the_time_alone() -> None:
    assert race_clock(EVENT, GUN, None) == f"started {time_of(EVENT, GUN, seconds=False)}"


def test_a_finished_race_shows_its_final_time_and_one_not_started_nothing() -> None:
    assert race_clock(EVENT, GUN, GUN + 431_000, GUN + 99 * MIN) == "7:11"
    assert race_clock(EVENT, GUN, GUN + 3_723_000) == "1:02:03"
    assert race_clock(EVENT, None, None, GUN) == ""
