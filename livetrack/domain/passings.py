"""Read rules: how one runner's reads, sightings and corrections become passings.

Pure functions over one runner's inputs; the fold calls :func:`compute` from the first
checkpoint whose inputs changed, so a late or corrected record re-derives everything after it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from livetrack.domain.event import Course, Event, Race, TimingPoint

Source = Literal["chip", "backup", "manual", "corrected"]

#: A sighting within this many seconds of a chip passing confirms it; further away it is a
#: contradiction for the timer to look at.
CONFIRM_WINDOW_MS = 120_000


class Passing(NamedTuple):
    """One runner's passing of one checkpoint (a tuple: the fold makes many, and compares
    them to what it had)."""

    checkpoint: str
    time_ms: int
    source: Source
    confirmed: bool = False
    contradiction: bool = False


@dataclass(slots=True)
class Inputs:
    """Everything the rules need about one runner, kept sorted as records arrive."""

    reads: dict[str, list[int]] = field(default_factory=dict)  # timing point -> sorted times
    sightings: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # cp -> (t, id)
    overrides: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # cp -> (id, t)

    def add_read(self, point: str, time_ms: int) -> bool:
        """Insert a read; False when that exact read is already known."""
        times = self.reads.get(point)
        if times is None:
            self.reads[point] = [time_ms]
            return True
        if not times or times[-1] < time_ms:  # the usual case: reads come in time order
            times.append(time_ms)
            return True
        i = bisect_left(times, time_ms)
        if i < len(times) and times[i] == time_ms:
            return False
        times.insert(i, time_ms)
        return True

    def empty(self) -> bool:
        return not self.reads and not self.sightings and not self.overrides

    def add_sighting(self, checkpoint: str, time_ms: int, ident: str) -> None:
        insort(self.sightings.setdefault(checkpoint, []), (time_ms, ident))

    def remove_sighting(self, ident: str) -> str | None:
        for cp, items in self.sightings.items():
            for item in items:
                if item[1] == ident:
                    items.remove(item)
                    return cp
        return None


#: How one timing point's reads are picked: (point id, pick the last read, dedup window ms).
_Feed = tuple[str, bool, int]


@dataclass(frozen=True, slots=True)
class Step:
    """One checkpoint of a course, with what the rules need about the points feeding it."""

    checkpoint: str
    distance_m: float
    main: tuple[_Feed, ...]
    backup: tuple[_Feed, ...]
    #: the main point's configured minimum gap from the previous checkpoint (ms), if any
    gap_ms: int | None
    #: the main point takes reads from before the runner's gun (a start mat that does)
    early: bool


def _feed(tp: TimingPoint) -> _Feed:
    return (tp.id, tp.rules.pick == "last", int(tp.rules.dedup_s * 1000))


@dataclass(frozen=True, slots=True)
class CourseFeeds:
    """Which timing points feed which checkpoints of one course."""

    main: Mapping[str, tuple[TimingPoint, ...]]
    backup: Mapping[str, tuple[TimingPoint, ...]]
    first_index: Mapping[str, int]  # timing point -> first checkpoint index it feeds
    steps: tuple[Step, ...] = ()

    @staticmethod
    def build(course: Course, points: Mapping[str, TimingPoint], event: Event) -> CourseFeeds:
        main: dict[str, list[TimingPoint]] = {cp.id: [] for cp in course.checkpoints}
        backup: dict[str, list[TimingPoint]] = {cp.id: [] for cp in course.checkpoints}
        first: dict[str, int] = {}
        for tp in points.values():
            for i, cp in enumerate(course.checkpoints):
                if cp.id in tp.checkpoints:
                    (main if tp.role == "main" else backup)[cp.id].append(tp)
                    first[tp.id] = min(first.get(tp.id, i), i)
        steps = []
        for cp in course.checkpoints:
            m = main[cp.id]
            gap = m[0].rules.min_gap_s if m else None
            steps.append(
                Step(
                    cp.id,
                    cp.distance_m,
                    tuple(map(_feed, m)),
                    tuple(map(_feed, backup[cp.id])),
                    None if gap is None else int(gap * 1000),
                    bool(m) and not m[0].rules.ignore_before_start,
                )
            )
        return CourseFeeds(
            {k: tuple(v) for k, v in main.items()},
            {k: tuple(v) for k, v in backup.items()},
            first,
            tuple(steps),
        )


def _pick(
    feeds: tuple[_Feed, ...], reads: Mapping[str, list[int]], earliest: int | None
) -> int | None:
    """The chip passing at one checkpoint from the reads of the points ``feeds`` name, or None.

    The first read at or after ``earliest`` opens a passing; reads within the point's dedup
    window of it belong to it. ``pick = first`` takes that first read, ``last`` the last one
    of them."""
    best: int | None = None
    for point, last, dedup_ms in feeds:
        times = reads.get(point)
        if not times:
            continue
        i = 0 if earliest is None else bisect_left(times, earliest)
        if i >= len(times):
            continue
        t = times[i]
        if last:
            limit = t + dedup_ms
            j = i + 1
            while j < len(times) and times[j] <= limit:
                j += 1
            t = times[j - 1]
        if best is None or t < best:
            best = t
    return best


def compute(
    race: Race,
    feeds: CourseFeeds,
    inputs: Inputs,
    gun_ms: int | None,
    previous: dict[str, Passing],
    from_index: int = 0,
    settle: bool = False,
) -> dict[str, Passing]:
    """All passings of one runner; checkpoints before ``from_index`` are kept from ``previous``.
    Returns ``previous`` itself when nothing changed; never mutates it.

    With ``settle`` (only the inputs of checkpoint ``from_index`` changed), a checkpoint whose
    passing comes out as before means every later one does too, so the rest is taken from
    ``previous``. (Not a checkpoint with no passing before or after: the last passing before
    the next ones may have moved.)
    """
    steps = feeds.steps
    speed = race.max_speed_mps
    reads, overrides, sightings = inputs.reads, inputs.overrides, inputs.sightings
    out: dict[str, Passing] = {}
    prev_t = gun_ms
    prev_d = 0.0
    for i, step in enumerate(steps):
        cp_id = step.checkpoint
        if i < from_index:
            kept = previous.get(cp_id)
            if kept is not None:
                out[cp_id] = kept
                prev_t, prev_d = kept.time_ms, step.distance_m
            continue
        # -- the rules at this checkpoint --------------------------------------------------
        passing: Passing | None
        override = overrides.get(cp_id) if overrides else None
        if override is not None:
            t = override[1]
            passing = None if t is None else Passing(cp_id, t, "corrected")
        else:
            earliest = prev_t
            if prev_t is not None:
                if i > 0:
                    gap = step.gap_ms
                    if gap is None:
                        gap = int((step.distance_m - prev_d) / speed * 1000)
                    earliest = prev_t + gap
                elif step.early:
                    earliest = None
            chip = _pick(step.main, reads, earliest)
            source: Source = "chip"
            if chip is None and step.backup:
                chip = _pick(step.backup, reads, earliest)
                source = "backup"
            seen = sightings.get(cp_id) if sightings else None
            if chip is not None:
                if not seen:
                    passing = Passing(cp_id, chip, source)
                else:
                    confirmed = any(abs(t - chip) <= CONFIRM_WINDOW_MS for t, _ in seen)
                    passing = Passing(cp_id, chip, source, confirmed, not confirmed)
            else:
                passing = _manual(cp_id, seen, earliest)
        # -----------------------------------------------------------------------------------
        before = previous.get(cp_id)
        if passing == before:
            passing = before  # the same object: later comparisons are identity checks
            # Later checkpoints depend on this one's inputs and on the last passing before
            # them: both are as before once a passing comes out the same, or when nothing
            # before this checkpoint moved (it is the first one re-derived).
            if settle and (i == from_index or passing is not None):
                if i == from_index:
                    return previous  # nothing changed (callers test ``new is old``)
                for later in steps[i:]:
                    kept = previous.get(later.checkpoint)
                    if kept is not None:
                        out[later.checkpoint] = kept
                return out
        if passing is not None:
            out[cp_id] = passing
            prev_t, prev_d = passing.time_ms, step.distance_m
    return out


def _manual(
    cp_id: str, seen: Sequence[tuple[int, str]] | None, earliest: int | None
) -> Passing | None:
    """A passing from marshals' sightings alone (no chip read), or None."""
    if not seen:
        return None
    for t, _ in seen:
        if earliest is None or t >= earliest:
            return Passing(cp_id, t, "manual")
    # seen by a marshal sooner than the runner could have got there: keep it, flagged
    return Passing(cp_id, seen[-1][0], "manual", contradiction=True)
