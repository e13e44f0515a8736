"""Read rules: how one runner's reads, sightings and corrections become passings.

Pure functions over one runner's inputs; the fold calls :func:`compute` from the first
checkpoint whose inputs changed, so a late or corrected record re-derives everything after it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from livetrack.domain.event import Course, Event, Race, ReadRules, TimingPoint

Source = Literal["chip", "backup", "manual", "corrected"]

#: A sighting within this many seconds of a chip passing confirms it; further away it is a
#: contradiction for the timer to look at.
CONFIRM_WINDOW_MS = 120_000


@dataclass(frozen=True, slots=True)
class Passing:
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
        times = self.reads.setdefault(point, [])
        i = bisect_left(times, time_ms)
        if i < len(times) and times[i] == time_ms:
            return False
        times.insert(i, time_ms)
        return True

    def add_sighting(self, checkpoint: str, time_ms: int, ident: str) -> None:
        insort(self.sightings.setdefault(checkpoint, []), (time_ms, ident))

    def remove_sighting(self, ident: str) -> str | None:
        for cp, items in self.sightings.items():
            for item in items:
                if item[1] == ident:
                    items.remove(item)
                    return cp
        return None


@dataclass(frozen=True, slots=True)
class CourseFeeds:
    """Which timing points feed which checkpoints of one course."""

    main: Mapping[str, tuple[TimingPoint, ...]]
    backup: Mapping[str, tuple[TimingPoint, ...]]
    first_index: Mapping[str, int]  # timing point -> first checkpoint index it feeds

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
        return CourseFeeds(
            {k: tuple(v) for k, v in main.items()},
            {k: tuple(v) for k, v in backup.items()},
            first,
        )


def _pick(points: Sequence[TimingPoint], inputs: Inputs, earliest: int | None) -> int | None:
    """The chip passing at one checkpoint from ``points``' reads, or None.

    The first read at or after ``earliest`` opens a passing; reads within ``dedup_s`` of it
    belong to it. ``pick = first`` takes that first read, ``last`` the last one of them."""
    best: int | None = None
    reads = inputs.reads
    for tp in points:
        times = reads.get(tp.id)
        if not times:
            continue
        i = 0 if earliest is None else bisect_left(times, earliest)
        if i >= len(times):
            continue
        t = times[i]
        if tp.rules.pick == "last":
            limit = t + int(tp.rules.dedup_s * 1000)
            j = i + 1
            while j < len(times) and times[j] <= limit:
                j += 1
            t = times[j - 1]
        if best is None or t < best:
            best = t
    return best


def min_gap_ms(rules: ReadRules, distance_m: float, race: Race) -> int:
    if rules.min_gap_s is not None:
        return int(rules.min_gap_s * 1000)
    return int(distance_m / race.max_speed_mps * 1000)


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

    With ``settle`` (only the inputs of checkpoint ``from_index`` changed), a checkpoint that
    comes out as before means every later one does too, so the rest is taken from ``previous``.
    """
    cps = race.course.checkpoints
    out: dict[str, Passing] = {}
    prev_t = gun_ms
    prev_d = 0.0
    for i, cp in enumerate(cps):
        if i < from_index:
            kept = previous.get(cp.id)
            if kept is not None:
                out[cp.id] = kept
                prev_t, prev_d = kept.time_ms, cp.distance_m
            continue
        passing = _at(race, feeds, inputs, cp.id, i, cp.distance_m - prev_d, prev_t)
        before = previous.get(cp.id)
        if passing == before:
            passing = before  # the same object: later comparisons are identity checks
            if settle:
                if i == from_index:
                    return previous  # nothing changed (callers test ``new is old``)
                for later in cps[i:]:
                    kept = previous.get(later.id)
                    if kept is not None:
                        out[later.id] = kept
                return out
        if passing is not None:
            out[cp.id] = passing
            prev_t, prev_d = passing.time_ms, cp.distance_m
    return out


def _at(
    race: Race,
    feeds: CourseFeeds,
    inputs: Inputs,
    cp_id: str,
    index: int,
    distance_m: float,
    prev_t: int | None,
) -> Passing | None:
    override = inputs.overrides.get(cp_id)
    if override is not None:
        t = override[1]
        return None if t is None else Passing(cp_id, t, "corrected")
    points = feeds.main[cp_id]
    earliest = prev_t
    if prev_t is not None and index > 0:
        gap = points[0].rules.min_gap_s if points else None
        earliest = prev_t + (
            int(distance_m / race.max_speed_mps * 1000) if gap is None else int(gap * 1000)
        )
    elif prev_t is not None and points and not points[0].rules.ignore_before_start:
        earliest = None
    chip = _pick(points, inputs, earliest)
    source: Source = "chip"
    if chip is None:
        backup = feeds.backup[cp_id]
        if backup:
            chip = _pick(backup, inputs, earliest)
            source = "backup"
    seen = inputs.sightings.get(cp_id, ())
    if chip is not None:
        if not seen:
            return Passing(cp_id, chip, source)
        confirmed = any(abs(t - chip) <= CONFIRM_WINDOW_MS for t, _ in seen)
        contradiction = not confirmed
        return Passing(cp_id, chip, source, confirmed, contradiction)
    for t, _ in seen:
        if earliest is None or t >= earliest:
            return Passing(cp_id, t, "manual")
    if seen:
        # seen by a marshal sooner than the runner could have got there: keep it, flagged
        return Passing(cp_id, seen[-1][0], "manual", contradiction=True)
    return None
