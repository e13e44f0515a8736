"""The course record watch, computed from the fold's state (pure).

For a race with a ``course_record``:

* **on pace**: runners still on the course (status ok, at least one split of their own, no
  finish passing) whose expected
  finish (from :func:`livetrack.domain.expect.expected`, the one seam for predictions) is
  faster than the record, fastest first; ``chance`` marks those whose 80% range only reaches
  under the record (the prediction itself is slower);
* **new record**: the moment a finish faster than the record is on the board, the watch
  flips to it (the fastest such finish, with the runner's name). A correction that removes
  or slows that finish flips it back: the watch is derived, never latched.

Times compare in the race's ranking basis (gun or chip, ``Race.rank_by``) to the millisecond:
a record of 6:58 is beaten by 6:57.999 and equalled, not beaten, by 6:58.000.
"""

from __future__ import annotations

from dataclasses import dataclass

from livetrack.domain.expect import expected
from livetrack.domain.ranking import ALL
from livetrack.domain.state import RaceState, Runner


@dataclass(frozen=True, slots=True)
class OnPace:
    """A runner whose expected finish (``expected_ms`` elapsed) threatens the record."""

    bib: str
    name: str
    expected_ms: int
    low_ms: int
    margin_ms: int  # record minus expected: positive when ahead of record pace
    chance: bool  # only the fast end of the 80% range is under the record


@dataclass(frozen=True, slots=True)
class RecordWatch:
    """The watch of one race: ``new_record`` set once someone beat ``record_ms``."""

    race: str
    record_ms: int
    best_ms: int | None
    new_record: tuple[str, str, int] | None  # (bib, name, elapsed ms)
    on_pace: tuple[OnPace, ...]


def _base(state: RaceState, runner: Runner) -> int | None:
    race = runner.race
    start = runner.passings.get(race.course.checkpoints[0].id)
    if race.rank_by == "chip" and start is not None:
        return start.time_ms
    return state.gun_ms(race.id, runner.p.wave)


def record_watch(state: RaceState, race_id: str, limit: int = 5) -> RecordWatch | None:
    """The watch of ``race_id``; None when the race has no course record."""
    race = state.event.races[race_id]
    if race.course_record_s is None:
        return None
    record = int(race.course_record_s * 1000)
    finish = race.course.checkpoints[-1].id
    top = state.boards.top(race_id, finish, ALL, 1)
    best = top[0][0] if top else None
    new = None
    if top and top[0][0] < record:
        runner = state.runners[top[0][1]]
        new = (runner.bib, runner.name, int(top[0][0]))
    pace: list[OnPace] = []
    for r in state.runners.values():
        if r.race.id != race_id or r.status != "ok" or finish in r.passings:
            continue
        exp = expected(state, r, finish)
        base = _base(state, r)
        if exp is None or base is None or getattr(exp, "basis", "") == "field":
            continue  # no split of the runner's own yet: nothing says they are on pace
        at, low = exp.at_ms - base, exp.low_ms - base
        if low < record:
            pace.append(OnPace(r.bib, r.name, at, low, record - at, chance=at >= record))
    pace.sort(key=lambda p: (p.expected_ms, p.bib))
    return RecordWatch(race_id, record, best, new, tuple(pace[:limit]))
