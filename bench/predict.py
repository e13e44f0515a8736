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
passings when an observed passing moves: ``rebuild_s`` times that for the whole field from
nothing in one go (every passing handed over, then observed in race order). Then one passing
ten minutes of race time behind the latest arrives late: the forecasts replay the race in
steps of ``STEP`` observations, as the runtime drives them, while a card asks for an estimate
between steps. ``late_step_ms_max`` is the longest any one of those calls (handing the passing
over, a step, an estimate) holds the caller, the event loop in the service, with its ratio to
the bare loop over as many passings as a step; ``late_step_cpu_ms_max`` the same in this
process's CPU time (on a shared machine the wall figure also holds the time other processes
took the core mid-step); ``late_steps`` how many steps (replaying, then letting go of the old
predictor) and ``late_fix_s`` their total: the cards say "updating" for most of it.

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
    late = feed.keys[feed.keys.bisect_left((feed.keys[-1][0] - 600.0,))]
    moved = dict(feed.passings[late[1]])
    moved[names[late[2]]] = late[0] + 0.5
    asked = feed.keys[-1][1]  # a runner at the front, whose card is open
    cpu = time.process_time
    a, p = clock(), cpu()
    forecasts.put("boston", late[1], moved)
    longest, longest_cpu = clock() - a, cpu() - p
    late_fix_s = longest
    steps = 0
    driver = ForecastSteps(forecasts)  # as the service drives them
    gc.freeze()  # what a catch-up made, as the service holds it
    while forecasts.updating("boston") or feed.retired:
        a, p = clock(), cpu()
        driver.step()
        b, q = clock(), cpu()
        forecasts.estimate("boston", asked, names[finish])
        c, r = clock(), cpu()
        longest = max(longest, b - a, c - b)
        longest_cpu = max(longest_cpu, q - p, r - q)
        late_fix_s += b - a
        steps += 1
    step_baseline_ms = baseline_us * STEP / 1000
    observe_us = 1e6 * observe_s / len(passings)
    estimate_us = 1e6 * estimate_s / max(1, estimates)
    uncached_us = 1e6 * uncached_s / max(1, uncached)
    with_us = 1e6 * with_s / max(1, withs)
    result = {
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
        "late_step_ms_max": round(1000 * longest, 2),
        "late_step_ratio": round(1000 * longest / step_baseline_ms, 1),
        "late_step_cpu_ms_max": round(1000 * longest_cpu, 2),
        "late_step_cpu_ratio": round(1000 * longest_cpu / step_baseline_ms, 1),
        "late_steps": steps,
        "late_fix_s": round(late_fix_s, 3),
        "late_fix_ratio": round(1e6 * late_fix_s / len(passings) / baseline_us, 2),
    }
    print(f"replayed {len(passings)} passings of {len(race.runners)} runners in {replay_s:.2f} s")
    print(f"observe  {result['observe_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_uncached_us_avg']:8.2f} us/call, not precomputed")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
