"""A race's counts (entrants, runners on the move, their latest passing) are asked for at every
tick by the race headers and the alerts; they are counted once per state of the fold and must
always be what walking the field would give."""

from __future__ import annotations

import random

import pytest
from factory import event
from test_fold_batch import random_log

from livetrack.domain.state import RaceState


def walked(st: RaceState, race_id: str) -> tuple[int, int, int, int]:
    """The counts the slow way: a walk of the field."""
    race = st.event.races[race_id]
    finish = race.course.checkpoints[-1].id
    field = [r for r in st.runners.values() if r.race.id == race_id]
    moving = [r for r in field if r.passings and r.status == "ok"]
    last = max((p.time_ms for r in moving for p in r.passings.values()), default=0)
    return len(field), len(moving), sum(finish in r.passings for r in moving), last


def counted(st: RaceState, race_id: str) -> tuple[int, int, int, int]:
    c = st.race_counts(race_id)
    return c.entrants, c.moving, c.moving_finished, st.last_moving_passing_ms(race_id)


@pytest.mark.parametrize("seed", range(40))
def test_race_counts_follow_every_record_folded_one_at_a_time_or_in_pages(seed: int) -> None:
    records = random_log(seed)
    rnd = random.Random(seed)
    one = RaceState(event())
    paged = RaceState(event())
    i = 0
    while i < len(records):
        size = rnd.randint(1, 12)
        for r in records[i : i + size]:
            one.apply(r)
            for race in one.event.races:
                assert counted(one, race) == walked(one, race)
        paged.apply_all(records[i : i + size])
        i += size
        for race in paged.event.races:
            assert counted(paged, race) == walked(paged, race)
    assert any(counted(one, race)[1] for race in one.event.races)  # the log moved someone
