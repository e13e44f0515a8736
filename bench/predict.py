"""Benchmark of the finish-time predictor on a full-size marathon replay.

Replays the Boston Marathon 2015 results (about 26,600 runners, ten checkpoints) in race order
(passings sorted by chip elapsed time, every runner starting together), asks for the finish
estimate after every passing, and prints timings. The last line of output is one JSON object.

The estimate right after a passing is served from what ``observe`` computed; to time the full
model as well, every 10th passing also asks for an estimate at the runner's next checkpoint
(never precomputed), reported as ``estimate_uncached_us_avg``, and for the finish estimate as
though the runner had already passed the next checkpoint (``estimate_with``, what a runner card
shows before the live forecasts observe that passing), ``estimate_with_us_avg``.

The live forecasts (:mod:`livetrack.domain.forecast`) rebuild a race's predictor from its
passings when an observed passing moves further back than the predictor can undo:
``rebuild_s`` times that for the whole field from nothing in one go (every passing handed
over, then observed in race order). Then two passings move, each by half a second, and the
forecasts are driven as the runtime drives them (steps of ``STEP`` observations, a card asking
for an estimate between steps) until the cards no longer say "updating": ``late_*``, one ten
minutes of race time behind the latest (the predictor undoes what it observed from there and
observes it again), and ``old_*``, one from halfway through the race, beyond what it can undo
(a fresh predictor replays the race, and the old one is let go of a piece per step).
``*_step_ms_max`` is the longest any one of those calls (handing the passing over, a step, an
estimate) holds the caller, the event loop in the service, with its ratio to the bare loop
over as many passings as a step; ``*_step_cpu_ms_max`` the same in this process's CPU time (on
a shared machine the wall figure also holds the time other processes took the core
mid-step); ``*_steps`` how many steps, ``*_observed`` how many observations they made,
``*_fix_s`` and ``*_fix_cpu_s`` their total, with ratios to the bare loop over the whole
race's passings (the cost of a late passing against one pass over the race).

Every figure has a ratio to a bare baseline measured in the same run: a loop over the same
passings that only stores each time and takes its logarithm (``baseline_us_avg``).

Data: ``boston_2015.csv`` and, as the previous edition, ``boston_2013.csv`` from the directory
in ``LIVETRACK_DATA``, else ``../shared/data`` beside the checkout.
Usage: ``python bench/predict.py [--no-history]``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import math

from livetrack.domain.forecast import Forecasts
from livetrack.domain.predict import Predictor
from livetrack.evaluation.formats import load_boston
from livetrack.service.runtime import FORECAST_STEP as STEP
from livetrack.service.runtime import ForecastSteps


def data_dir() -> Path:
    env = os.environ.get("LIVETRACK_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _late_passing(
    forecasts: Forecasts, key: tuple[float, str, int], asked: str
) -> tuple[float, float, int, float, float, int]:
    """Move the passing ``key`` by half a second and drive the forecasts as the service does
    until the cards no longer say "updating" and the predictor replaced (if any) is let go
    of, a card asking for an estimate between steps. Returns the longest call (wall and CPU
    seconds), the number of steps, their total (wall and CPU) and the observations made."""
    clock, cpu = time.perf_counter, time.process_time
    feed = forecasts._races["boston"]
    names = [name for name, _ in feed.checkpoints]
    moved = dict(feed.passings[key[1]])
    moved[names[key[2]]] = key[0] + 0.5
    observed = feed.observed
    a, p = clock(), cpu()
    forecasts.put("boston", key[1], moved)
    longest, longest_cpu = clock() - a, cpu() - p
    fix_s, fix_cpu_s = longest, longest_cpu
    steps = 0
    driver = ForecastSteps(forecasts)  # as the service drives them
    while forecasts.updating("boston") or feed.retired:
        a, p = clock(), cpu()
        driver.step()
        b, q = clock(), cpu()
        forecasts.estimate("boston", asked, names[-1])
        c, r = clock(), cpu()
        longest = max(longest, b - a, c - b)
        longest_cpu = max(longest_cpu, q - p, r - q)
        fix_s += b - a
        fix_cpu_s += q - p
        steps += 1
    return longest, longest_cpu, steps, fix_s, fix_cpu_s, feed.observed - observed


def main(argv: list[str]) -> int:
    source = data_dir() / "boston_2015.csv"
    if not source.exists():
        print(f"benchmark data not found: {source} (set LIVETRACK_DATA)", file=sys.stderr)
        return 2
    race = load_boston(source)
    history = None
    if "--no-history" not in argv:
        history = [r.times for r in load_boston(data_dir() / "boston_2013.csv").runners]
    names = [name for name, _ in race.checkpoints]
    finish = len(names) - 1
    passings = sorted(
        (t, c, r.runner_id) for r in race.runners for c, t in enumerate(r.times) if t is not None
    )
    clock = time.perf_counter
    bare: dict[str, float] = {}
    a = clock()
    for t, c, rid in passings:
        bare[rid] = math.log(t) + c
    baseline_us = 1e6 * (clock() - a) / len(passings)
    times = {r.runner_id: r.times for r in race.runners}
    with_s = 0.0
    withs = 0
    started = clock()
    predictor = Predictor(race.checkpoints, history)
    built = clock()
    observe_s = estimate_s = uncached_s = 0.0
    estimates = uncached = 0
    for n, (t, c, rid) in enumerate(passings):
        a = clock()
        predictor.observe(rid, names[c], t)
        b = clock()
        observe_s += b - a
        if c != finish:
            predictor.estimate(rid, "finish")
            e = clock()
            estimate_s += e - b
            estimates += 1
            if n % 10 == 0:
                predictor.estimate(rid, names[c + 1])
                w = clock()
                uncached_s += w - e
                uncached += 1
                t_next = times[rid][c + 1]
                if t_next is not None and t_next > t:
                    predictor.estimate_with(rid, [(names[c + 1], t_next)], names[finish])
                    with_s += clock() - w
                    withs += 1
    replay_s = clock() - started
    del predictor  # the rebuild below starts from a heap without it
    gc.collect()
    given = {
        r.runner_id: {names[c]: t for c, t in enumerate(r.times) if t is not None}
        for r in race.runners
    }
    a = clock()
    # the forecasts of a process restored from a snapshot holding these passings
    forecasts = Forecasts.__new__(Forecasts)
    forecasts.__setstate__({"races": {"boston": (list(race.checkpoints), history or [], given)}})
    forecasts.settle()
    rebuild_s = clock() - a
    feed = forecasts._races["boston"]
    asked = feed.keys[-1][1]  # a runner at the front, whose card is open
    gc.freeze()  # what a catch-up made, as the service holds it
    # a passing from halfway through the race, further back than the predictor can undo:
    # replayed from the start by a fresh predictor
    old = _late_passing(forecasts, feed.keys[len(feed.keys) // 2], asked)
    del forecasts, feed
    gc.unfreeze()
    gc.collect()
    # the race as it stands when half the field has finished (the busiest part of the day),
    # and a passing ten minutes of race time behind: the predictor undoes what it observed
    # from there and observes it again
    mid = sorted(f for r in race.runners if (f := r.times[finish]) is not None)
    now = mid[len(mid) // 2]
    forecasts = Forecasts.__new__(Forecasts)
    so_far = {rid: {cp: t for cp, t in mine.items() if t <= now} for rid, mine in given.items()}
    so_far = {rid: mine for rid, mine in so_far.items() if mine}
    forecasts.__setstate__({"races": {"boston": (list(race.checkpoints), history or [], so_far)}})
    forecasts.settle()
    feed = forecasts._races["boston"]
    gc.freeze()
    late_key = feed.keys[feed.keys.bisect_left((now - 600.0,))]
    late_after = len(feed.keys) - feed.keys.bisect_left(late_key)
    late = _late_passing(forecasts, late_key, feed.keys[-1][1])
    gc.unfreeze()
    step_baseline_ms = baseline_us * STEP / 1000
    observe_us = 1e6 * observe_s / len(passings)
    estimate_us = 1e6 * estimate_s / max(1, estimates)
    uncached_us = 1e6 * uncached_s / max(1, uncached)
    with_us = 1e6 * with_s / max(1, withs)
    result: dict[str, object] = {
        "runners": len(race.runners),
        "checkpoints": len(names),
        "passings": len(passings),
        "estimates": estimates,
        "history_runners": len(history or ()),
        "build_s": round(built - started, 3),
        "baseline_us_avg": round(baseline_us, 3),
        "observe_us_avg": round(observe_us, 2),
        "observe_ratio": round(observe_us / baseline_us, 1),
        "estimate_us_avg": round(estimate_us, 2),
        "estimate_ratio": round(estimate_us / baseline_us, 1),
        "estimate_uncached_us_avg": round(uncached_us, 2),
        "estimate_uncached_ratio": round(uncached_us / baseline_us, 1),
        "estimate_with_us_avg": round(with_us, 2),
        "estimate_with_ratio": round(with_us / baseline_us, 1),
        "replay_s": round(replay_s, 2),
        "replay_ratio": round(1e6 * replay_s / len(passings) / baseline_us, 1),
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_ratio": round(1e6 * rebuild_s / len(passings) / baseline_us, 1),
    }
    result["late_passings_after"] = late_after
    for name, (longest, longest_cpu, steps, fix_s, fix_cpu_s, observed) in (
        ("late", late),
        ("old", old),
    ):
        result |= {
            f"{name}_step_ms_max": round(1000 * longest, 2),
            f"{name}_step_ratio": round(1000 * longest / step_baseline_ms, 1),
            f"{name}_step_cpu_ms_max": round(1000 * longest_cpu, 2),
            f"{name}_step_cpu_ratio": round(1000 * longest_cpu / step_baseline_ms, 1),
            f"{name}_steps": steps,
            f"{name}_observed": observed,
            f"{name}_fix_s": round(fix_s, 3),
            f"{name}_fix_cpu_s": round(fix_cpu_s, 3),
            # against the bare loop over the whole race's passings
            f"{name}_fix_ratio": round(1e6 * fix_s / len(passings) / baseline_us, 2),
            f"{name}_fix_cpu_ratio": round(1e6 * fix_cpu_s / len(passings) / baseline_us, 2),
        }
    print(f"replayed {len(passings)} passings of {len(race.runners)} runners in {replay_s:.2f} s")
    print(f"observe  {result['observe_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_uncached_us_avg']:8.2f} us/call, not precomputed")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
