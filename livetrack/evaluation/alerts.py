"""How well "about N minutes from you" is timed: a simulated race played through the fold.

The race's records are folded in time order while a clock steps on; at each step the alerts
due for a set of supporters (each standing at a checkpoint, with a lead time) are decided as
the service decides them (:func:`livetrack.domain.alerts.due`, each key once). When the race
is over, each ``near`` alert's time is compared with the moment it should have come: the
runner's actual passing of that checkpoint minus the lead time. A naive even-pace
extrapolation from the runner's latest passing is timed the same way, as the baseline.

Given a :class:`~livetrack.domain.alert_plan.Plan`, each step looks only at the watches it hands
out (their runner moved, or their moment came), as the service's alert loop does; without one,
at every watch at every step.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from livetrack.domain.alert_plan import Plan, key_of
from livetrack.domain.alerts import Memo, Watch, due, races_over
from livetrack.domain.expect import last_passing, start_ms
from livetrack.domain.records import Record
from livetrack.domain.state import RaceState


@dataclass
class Timing:
    """Per watch: when its near alert came (None: never), and when the runner arrived."""

    watch: Watch
    alert_ms: int | None = None
    naive_ms: int | None = None
    arrival_ms: int | None = None
    alerts: list[str] = field(default_factory=list)
    #: when each alert came, by kind
    when: dict[str, int] = field(default_factory=dict)

    @property
    def error_s(self) -> float | None:
        if self.alert_ms is None or self.arrival_ms is None:
            return None
        return (self.alert_ms - (self.arrival_ms - self.watch.lead_s * 1000)) / 1000

    @property
    def naive_error_s(self) -> float | None:
        if self.naive_ms is None or self.arrival_ms is None:
            return None
        return (self.naive_ms - (self.arrival_ms - self.watch.lead_s * 1000)) / 1000


def _naive_eta(state: RaceState, bib: str, spot_m: float) -> int | None:
    r = state.runners[bib]
    last = last_passing(r)
    begin = start_ms(state, r)
    if last is None or begin is None:
        return None
    cp = r.race.course.checkpoints[last[0]]
    if cp.distance_m <= 0 or cp.distance_m >= spot_m:
        return None
    per_m = (last[1] - begin) / cp.distance_m
    return int(last[1] + (spot_m - cp.distance_m) * per_m)


def play(
    state: RaceState,
    records: Sequence[tuple[int, Record]],
    watches: Sequence[Watch],
    step_ms: int = 5_000,
    tail_ms: int = 15 * 60_000,
    plan: Plan | None = None,
) -> list[Timing]:
    """Fold ``records`` (each with the time it becomes known) while a clock steps by
    ``step_ms``; returns each watch's timing. Watches must stand at checkpoints. With
    ``plan``, each step decides only the watches it hands out (its counters say how many)."""
    timings = [Timing(w) for w in watches]
    by_key = {key_of(t.watch): t for t in timings}
    if plan is not None:
        plan.load(watches)
    sent: set[str] = set()
    ordered = sorted(records, key=lambda x: x[0])
    if not ordered:
        return timings
    now = ordered[0][0]
    end = ordered[-1][0] + tail_ms
    i = 0
    spots: dict[tuple[str, str], float] = {}

    def spot_m(bib: str, checkpoint: str) -> float:
        if (bib, checkpoint) not in spots:
            course = state.runners[bib].race.course
            spots[bib, checkpoint] = course.checkpoints[course.index(checkpoint)].distance_m
        return spots[bib, checkpoint]

    while now <= end:
        batch = []
        while i < len(ordered) and ordered[i][0] <= now:
            batch.append(ordered[i][1])
            i += 1
        if batch:
            state.apply_all(batch)
        over = races_over(state, now)
        memo: Memo = {}
        for w in watches if plan is None else plan.take(state, now):
            t = by_key[key_of(w)]
            for a in due(state, w, now, sent, over, memo):
                sent.add(a.key)
                t.alerts.append(a.kind)
                t.when[a.kind] = now
                if a.kind.startswith("near:") and t.alert_ms is None:
                    t.alert_ms = now
            if plan is not None:
                plan.plan(w, state, now, memo, sent)
        for t in timings:
            w = t.watch
            assert w.spot is not None
            if w.bib not in state.runners:
                continue
            if t.naive_ms is None and w.spot.checkpoint not in state.runners[w.bib].passings:
                eta = _naive_eta(state, w.bib, spot_m(w.bib, w.spot.checkpoint))
                if eta is not None and now >= eta - w.lead_s * 1000:
                    t.naive_ms = now
        now += step_ms
    for t in timings:
        assert t.watch.spot is not None
        p = state.runners[t.watch.bib].passings.get(t.watch.spot.checkpoint)
        t.arrival_ms = p.time_ms if p is not None else None
    return timings


def summary(timings: Sequence[Timing]) -> dict[str, float | int]:
    """Alert timing error (alert time minus (arrival minus lead), seconds: positive is late)."""
    errs = [e for t in timings if (e := t.error_s) is not None]
    naive = [e for t in timings if (e := t.naive_error_s) is not None]
    arrived = [t for t in timings if t.arrival_ms is not None]

    def q(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    abs_e = [abs(e) for e in errs]
    abs_n = [abs(e) for e in naive]
    return {
        "watches": len(timings),
        "arrived": len(arrived),
        "alerted": len(errs),
        "missed": sum(1 for t in arrived if t.alert_ms is None),
        "after_arrival": sum(
            1 for t in arrived if t.alert_ms is not None and t.alert_ms > (t.arrival_ms or 0)
        ),
        "median_error_s": round(statistics.median(errs), 1) if errs else float("nan"),
        "median_abs_error_s": round(statistics.median(abs_e), 1) if abs_e else float("nan"),
        "p90_abs_error_s": round(q(abs_e, 0.9), 1),
        "naive_median_abs_error_s": round(statistics.median(abs_n), 1) if abs_n else float("nan"),
        "naive_p90_abs_error_s": round(q(abs_n, 0.9), 1),
    }
