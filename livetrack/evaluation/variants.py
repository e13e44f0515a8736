"""Stress variants of a past race, for checking the finish-time intervals on days unlike the
history: a warm day, a cold day, a random half of the field.

Each variant is made from the race's own splits with a seeded random generator, so the same
seed gives the same race every time. Only the race replayed is changed, never its history.

* ``warm``: from 15K (or 15/42.195 of the course) on, each runner's elapsed time at distance
  ``d`` is stretched by ``1 + k g(d)^2``, ``g`` the share of the course beyond that point, ``k`` =
  0.06 times the runner's pace over the first checkpoint relative to 5:00 per km, times a
  random factor of median 1 and log standard deviation 0.4: a 4-hour marathoner finishes about
  15 minutes later, slower runners proportionally more, some much more. Nothing of it shows
  before 15K.
* ``cold``: the reverse, smaller and more uniform: ``1 - k g(d)`` with ``k`` = 0.03 times the
  same pace ratio, times a random factor of log standard deviation 0.2.
* ``half``: each runner kept with probability one half.
"""

from __future__ import annotations

import math
import random

from livetrack.evaluation.formats import RaceResults, RunnerResult

__all__ = ["VARIANTS", "variant"]

VARIANTS = ("warm", "cold", "half")
_ONSET = 15000.0 / 42195.0
"""Share of the course from which the warm and cold days change the splits."""
_REFERENCE_PACE = 0.3
"""Seconds per metre (5:00 per km) at which a runner's factor is the variant's base."""


def variant(race: RaceResults, name: str, seed: int = 1) -> RaceResults:
    """``race`` as the variant ``name`` (one of :data:`VARIANTS`) with random seed ``seed``.
    Raises ``ValueError`` for an unknown variant."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; one of {', '.join(VARIANTS)}")
    rng = random.Random(seed)
    if name == "half":
        kept = tuple(r for r in race.runners if rng.random() < 0.5)
        return RaceResults(race.checkpoints, kept)
    finish = race.checkpoints[-1][1]
    shares = [d / finish for _, d in race.checkpoints]
    runners = []
    for r in race.runners:
        timed = [(t, d) for t, (_, d) in zip(r.times, race.checkpoints, strict=True) if t]
        if not timed:
            runners.append(r)
            continue
        pace = timed[0][0] / timed[0][1] / _REFERENCE_PACE
        if name == "warm":
            k = 0.06 * pace * math.exp(rng.gauss(0.0, 0.4))
        else:
            k = -0.03 * pace * math.exp(rng.gauss(0.0, 0.2))
        times = []
        for t, f in zip(r.times, shares, strict=True):
            g = max(0.0, (f - _ONSET) / (1.0 - _ONSET))
            stretch = 1.0 + k * (g * g if name == "warm" else g)
            times.append(None if t is None else t * stretch)
        runners.append(RunnerResult(r.runner_id, tuple(times), r.edition))
    return RaceResults(race.checkpoints, tuple(runners))
