"""Benchmark of the finish-time predictor on a full-size marathon replay.

Replays the Boston Marathon 2015 results (about 26,600 runners, ten checkpoints) in race order
(passings sorted by chip elapsed time, every runner starting together), asks for the finish
estimate after every passing, and prints timings. The last line of output is one JSON object.

The estimate right after a passing is served from what ``observe`` computed; to time the full
model as well, every 10th passing also asks for an estimate at the runner's next checkpoint
(never precomputed), reported as ``estimate_uncached_us_avg``.

Data: ``boston_2015.csv`` and, as the previous edition, ``boston_2013.csv`` from the directory
in ``LIVETRACK_DATA``, else ``../shared/data`` beside the checkout.
Usage: ``python bench/predict.py [--no-history]``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livetrack.domain.predict import Predictor
from livetrack.evaluation.formats import load_boston


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
                uncached_s += clock() - e
                uncached += 1
    replay_s = clock() - started
    result = {
        "runners": len(race.runners),
        "checkpoints": len(names),
        "passings": len(passings),
        "estimates": estimates,
        "history_runners": len(history or ()),
        "build_s": round(built - started, 3),
        "observe_us_avg": round(1e6 * observe_s / len(passings), 2),
        "estimate_us_avg": round(1e6 * estimate_s / max(1, estimates), 2),
        "estimate_uncached_us_avg": round(1e6 * uncached_s / max(1, uncached), 2),
        "replay_s": round(replay_s, 2),
    }
    print(f"replayed {len(passings)} passings of {len(race.runners)} runners in {replay_s:.2f} s")
    print(f"observe  {result['observe_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_us_avg']:8.2f} us/call (incl. timer overhead)")
    print(f"estimate {result['estimate_uncached_us_avg']:8.2f} us/call, not precomputed")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
