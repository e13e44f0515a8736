"""The course map, a race's charity totals, a marshal's lists and the timer's panels send what
changed (keyed rows and parts), as the race board does; a newcomer still gets them whole."""

from __future__ import annotations

import re

import pytest
from factory import event, gun, person, read

from livetrack.domain.state import RaceState
from livetrack.service import runtime
from livetrack.web import features
from livetrack.web.render import Renderer

STEP = re.compile(r'<template data-p="([^"]*)">')


@pytest.fixture(autouse=True)
def _race_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The event's clock is the wall clock once it is past the newest record: an overdue
    runner's row says how long it has been overdue, so a second ticking between two frames
    would send that row as changed. Here the clock is the newest record's time, as in a
    replay."""
    monkeypatch.setattr(runtime, "now_ms", lambda: 0)


def _race() -> Renderer:
    r = features.renderer(RaceState(event()))
    for rec in [
        *(person(str(b), charity="Cancer Research", pledged=10.0) for b in range(1, 9)),
        gun("mile"),
        *(read(f"C{b}", "half", 200 + b) for b in range(1, 9)),
        read("C1", "finish", 431),
    ]:
        r.state.apply(rec)
    return r


def _after_a_finish(r: Renderer, topic: str) -> tuple[str, str]:
    """The region before (whole) and what goes to its watchers when runner 2 finishes."""
    before = r.frame(topic)
    r.state.apply(read("C2", "finish", 440))
    after = r.frame(topic, before)
    assert after.delta is not None, f"{topic}: sent whole"
    return before.full, after.delta


def test_the_course_map_sends_the_runner_who_moved() -> None:
    whole, delta = _after_a_finish(_race(), "map:mile")
    assert 'data-bib="2"' in whole and 'data-bib="3"' in whole
    # runner 2 has finished: off the map; the field's clock moves on; nobody else is sent
    assert STEP.findall(delta) == ["", "drop:t-fp-mile-2"]
    assert 'id="t-map-mile-n"' in delta and "data-bib" not in delta


def test_charity_totals_send_the_new_total_and_the_charitys_row() -> None:
    _, delta = _after_a_finish(_race(), "charity:mile")
    assert STEP.findall(delta) == ["", "", ""]  # the total, its line, the charity's row
    assert "Raised so far: £20" in delta and "2 of 8 finished" in delta


def test_a_marshals_lists_send_the_runner_who_passed_and_the_counts() -> None:
    r = _race()
    before = r.frame("marshal:finish")
    r.state.apply(read("C2", "finish", 440))
    after = r.frame("marshal:finish", before)
    assert after.delta is not None
    assert "#2" in after.delta and "#3" not in after.delta  # the others' rows stay
    assert len(after.delta) < len(before.full) / 2


def test_the_announcer_sends_the_new_finisher_first_and_nothing_else() -> None:
    whole, delta = _after_a_finish(_race(), "announce")
    assert STEP.findall(delta) == ["first:t-announce-l"]
    assert "First2" in delta and "First1" not in delta
    assert "First1" in whole


def test_the_timers_problems_panel_sends_the_problem_that_came() -> None:
    r = _race()
    before = r.frame("problems")
    r.state.apply(person("9"))
    r.state.apply(read("C9", "finish", 450))  # no halfway time: a problem to look at
    after = r.frame("problems", before)
    assert before.drawing is not None and after.drawing is not None
    # the panel had no rows, so the first one changes its skeleton: sent whole, once
    assert after.delta is None and "#9" in after.full
    r.state.apply(person("10"))
    r.state.apply(read("C10", "finish", 460))
    later = r.frame("problems", after)
    assert later.delta is not None and "#10" in later.delta and "#9" not in later.delta
