"""Forecasts on a simulated race day (the demo's 10K): the same whatever the folding, never
behind the runner, and scored against the finishers."""

from __future__ import annotations

import gc
import pickle
import random
from datetime import UTC, datetime

import pytest

from livetrack import sim
from livetrack.demo.run import demo_event
from livetrack.domain import forecast, predict
from livetrack.domain.event import Event
from livetrack.domain.expect import expected, last_passing, next_checkpoint
from livetrack.domain.predict import Predictor
from livetrack.domain.records import ChipRead, GunStart, Record
from livetrack.domain.state import RaceState, Runner
from livetrack.service.runtime import ForecastSteps
from livetrack.web.views import runner as runner_view

GUN = int(datetime(2026, 11, 23, 10, tzinfo=UTC).timestamp() * 1000)  # the demo's day


def race_day(event: Event, runners: int = 150) -> list[Record]:
    people = sim.make_participants(event, {"tenk": runners})
    out: list[Record] = list(people)
    for a in sim.plan(event, people, {"tenk": GUN}, seed=3):
        if a.kind == "gun":
            out.append(GunStart(a.race, a.at_ms, a.wave))
        else:
            assert a.read is not None
            body = {k: str(v) for k, v in a.read.items()}
            out.append(ChipRead(body["reader"], body["point"], body["chip"], int(body["time"])))
    return out


def cards(st: RaceState) -> dict[str, object]:
    """What every card says once the forecasts have caught up."""
    st.forecasts.settle()
    out: dict[str, object] = {}
    for bib, r in sorted(st.runners.items()):
        if r.race.id != "tenk":
            continue
        nxt = next_checkpoint(r)
        finish = r.race.course.checkpoints[-1].id
        out[bib] = (nxt, nxt and expected(st, r, nxt), expected(st, r, finish))
    return out


@pytest.fixture(scope="module")
def day() -> tuple[Event, list[Record]]:
    event = demo_event(datetime.fromtimestamp(GUN / 1000, UTC).date())  # the day of GUN
    return event, race_day(event)


@pytest.mark.parametrize("step", [forecast.STEP, 7])
def test_a_race_day_folded_one_read_at_a_time_or_in_pages_gives_the_same_cards(
    day: tuple[Event, list[Record]], step: int
) -> None:
    """The single fold's forecasts also observe ``step`` passings after every record (so
    that late passings find rebuilds part-way); once settled, both say the same."""
    event, records = day
    rnd = random.Random(5)
    single = RaceState(event)
    paged = RaceState(event)
    i = 0
    compared = 0
    while i < len(records):
        size = rnd.randint(1, 400)
        for r in records[i : i + size]:
            single.apply(r)
            single.forecasts.drain(step)
            if rnd.random() < 0.02:
                cards(single)  # somebody looked part-way through a page
        paged.apply_all(records[i : i + size])
        i += size
        if rnd.random() < 0.5 or i >= len(records):
            a, b = cards(single), cards(paged)
            assert a == b
            compared += sum(1 for v in a.values() if v[2] is not None)  # type: ignore[index]
    assert compared > 300
    assert single.forecasts.accuracy("tenk") == paged.forecasts.accuracy("tenk")


def test_no_estimate_is_behind_the_runner_and_every_range_is_strict(
    day: tuple[Event, list[Record]],
) -> None:
    event, records = day
    st = RaceState(event)
    checked = 0
    for n, r in enumerate(records):
        st.apply(r)
        if n % 97:
            continue
        for runner in st.runners.values():
            last = last_passing(runner)
            if runner.race.id != "tenk" or last is None:
                continue
            cps = runner.race.course.checkpoints
            for cp in cps[last[0] + 1 :]:
                exp = expected(st, runner, cp.id)
                if exp is None:
                    continue
                checked += 1
                assert last[1] < exp.low_ms < exp.at_ms < exp.high_ms, (runner.bib, cp.id, exp)
            for cp in cps[1 : last[0] + 1]:
                assert expected(st, runner, cp.id) is None
    assert checked > 1000


def test_an_estimate_moves_the_moment_the_runner_passes(
    day: tuple[Event, list[Record]],
) -> None:
    event, records = day
    st = RaceState(event)
    moved = 0
    for r in records:
        bib = None
        if isinstance(r, ChipRead):
            bib = st.chip_owner.get(r.chip)
        before = None if bib is None else last_passing(st.runners[bib])
        st.apply(r)
        if bib is None:
            continue
        runner = st.runners[bib]
        after = last_passing(runner)
        if after is None or after == before or runner.race.id != "tenk":
            continue
        nxt = next_checkpoint(runner)
        if nxt is None:
            continue
        exp = expected(st, runner, nxt)
        assert exp is not None and exp.checkpoint == nxt and exp.low_ms > after[1]
        moved += 1
    assert moved > 300


def test_accuracy_scores_the_finishers_at_every_checkpoint(
    day: tuple[Event, list[Record]],
) -> None:
    event, records = day
    st = RaceState(event)
    st.apply_all(records)
    st.forecasts.settle()
    scores = st.forecasts.accuracy("tenk")
    cps = [cp.id for cp in event.races["tenk"].course.checkpoints[1:-1]]
    assert [s.checkpoint for s in scores] == cps
    finishers = len(st.finishers["tenk"])
    assert finishers > 100
    for s in scores:
        assert 0.8 * finishers <= s.n <= finishers
        assert 0.0 < s.mae_s < 600.0
        assert 0.5 <= s.coverage <= 1.0


def _move_late(
    monkeypatch: pytest.MonkeyPatch, share: float
) -> tuple[RaceState, forecast._RaceFeed, list[int], int, dict[str, object]]:
    """A 1,200-runner 10K observed to the end, then the passing ``share`` of the way back
    through what was observed moved by half a second; observe calls counted from there.
    Returns the state, the race's feed, the count of calls, the number of passings observed
    after the moved one, and the cards asked before."""
    event = demo_event(datetime.fromtimestamp(GUN / 1000, UTC).date())
    st = RaceState(event)
    st.apply_all(race_day(event, 1200))
    st.forecasts.settle()
    calls = [0]
    real = Predictor.observe

    def counted(self: Predictor, runner_id: str, checkpoint: str, elapsed_s: float) -> None:
        calls[0] += 1
        real(self, runner_id, checkpoint, elapsed_s)

    monkeypatch.setattr(Predictor, "observe", counted)
    feed = st.forecasts._races["tenk"]
    total = len(feed.keys)
    assert total > 4 * 1000
    late = feed.keys[total - int(total * share)]
    assert feed.seen is not None and late < feed.seen
    after = feed.keys.bisect_right(feed.seen) - feed.keys.bisect_left(late)
    before = cards(st)
    moved = dict(feed.passings[late[1]])
    moved[feed.checkpoints[late[2]][0]] = late[0] + 0.5
    st.forecasts.put("tenk", late[1], moved)
    assert calls[0] == 0 and st.forecasts.updating("tenk")
    return st, feed, calls, after, before


def _cards_wait_and_agree(
    st: RaceState, feed: forecast._RaceFeed, calls: list[int], before: dict[str, object]
) -> int:
    """Every card asked while the forecasts catch up observes nothing and says updating; each
    step observes at most ``STEP`` passings; once caught up, every estimate is what a process
    rebuilt from the same passings gives. Returns the number of steps."""
    waiting = {b: c for b, c in before.items() if st.runners[b].passings and c[2] is not None}
    for b in waiting:
        r = st.runners[b]
        exp = expected(st, r, r.race.course.checkpoints[-1].id)
        assert exp is not None and exp.updating
    assert calls[0] == 0
    card = runner_view(st, next(iter(waiting)))
    assert card is not None and card["next"]["updating"] is True
    steps = 0
    while st.forecasts.updating("tenk"):
        at = calls[0]
        st.forecasts.drain(forecast.STEP)
        assert calls[0] - at <= forecast.STEP
        steps += 1
        assert steps <= len(feed.keys)  # it ends
    assert st.forecasts.caught_up() == {"tenk"}
    return steps


def _agrees_with_a_rebuilt_process(st: RaceState) -> None:
    rebuilt = pickle.loads(pickle.dumps(st.forecasts))
    after = {b: expected(st, r, r.race.course.checkpoints[-1].id) for b, r in _tenk(st)}
    st.forecasts = rebuilt
    st.forecasts.settle()
    assert after == {b: expected(st, r, r.race.course.checkpoints[-1].id) for b, r in _tenk(st)}
    assert not any(e.updating for e in after.values() if e is not None)


def test_a_late_passing_near_the_end_of_a_long_race_replays_only_what_followed_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A passing among the last 2% observed moves once the whole race has been observed: the
    predictor undoes what it observed from there and observes it again, a bounded step at a
    time, the cards marked updating meanwhile; nothing before it is observed again, no
    predictor is replaced, and the estimates then are those of a process rebuilt from the
    same passings."""
    st, feed, calls, after, before = _move_late(monkeypatch, 0.02)
    steps = _cards_wait_and_agree(st, feed, calls, before)
    assert 0 < calls[0] <= after + 1  # what followed it, and itself
    assert steps <= 2 * after // forecast.STEP + 2  # undone, then observed again
    assert not feed.retired and not feed.rebuilding
    assert st.forecasts.drain(forecast.STEP) == 0
    _agrees_with_a_rebuilt_process(st)


def test_a_passing_later_than_the_predictor_can_undo_replays_the_race_in_bounded_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A passing moves further back than the predictor's record of what it can undo
    reaches: a fresh predictor replays the race from the start, a step of at most ``STEP``
    observations at a time, while the old one answers (its cards marked updating); the old
    one is then let go of a bounded piece per step, and the estimates are those of a process
    rebuilt from the same passings."""
    monkeypatch.setattr(predict, "REWIND", 500)
    st, feed, calls, after, before = _move_late(monkeypatch, 0.5)
    assert after > 500
    steps = _cards_wait_and_agree(st, feed, calls, before)
    assert steps >= (len(feed.keys) - 200) // forecast.STEP  # replayed the race, step by step
    assert len(feed.retired) == 1
    shed = 0
    at = calls[0]
    while st.forecasts.drain(forecast.STEP):
        shed += 1
    assert calls[0] == at and not feed.retired
    pieces = (len(st.runners) + predict.REWIND) // forecast.SHED + 2  # record, runners
    assert 2 <= shed <= pieces + len(feed.checkpoints)
    _agrees_with_a_rebuilt_process(st)


def _tenk(st: RaceState) -> list[tuple[str, Runner]]:
    return sorted((b, r) for b, r in st.runners.items() if r.race.id == "tenk")


def test_the_service_steps_pause_the_collector_only_while_a_rebuild_runs(
    day: tuple[Event, list[Record]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild's objects would set off full collections that rescan them all: the steps
    pause the cyclic collector while it runs, and resume it (what it made frozen) once it
    has taken over, naming the race whose cards moved."""
    monkeypatch.setattr(predict, "REWIND", 0)  # every late passing rebuilds
    event, records = day
    st = RaceState(event)
    st.apply_all(records)
    st.forecasts.settle()
    feed = st.forecasts._races["tenk"]
    late = feed.keys[len(feed.keys) // 2]
    moved = dict(feed.passings[late[1]])
    moved[feed.checkpoints[late[2]][0]] = late[0] + 0.5
    steps = ForecastSteps(st.forecasts)
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        assert steps.step() == (0, set())  # nothing to do: the collector left alone
        assert gc.isenabled()
        st.forecasts.put("tenk", late[1], moved)
        caught: set[str] = set()
        while st.forecasts.updating("tenk"):
            left, done = steps.step()
            caught |= done
            assert left > 0 or not st.forecasts.updating("tenk")
            assert gc.isenabled() is not st.forecasts.updating("tenk")
        assert caught == {"tenk"} and gc.isenabled()
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()
