"""How well can any finish-time forecast do on a race? A floor for the predictor's targets.

Not a speed benchmark: an accuracy bound, printed the same way (a table on stderr, one JSON
object on the last line of stdout). It needs numpy and scikit-learn, which livetrack does not
(``pip install scikit-learn``), and one or more Boston-format results files (the format of
``../shared/data/boston_*.csv``).

For the race given, at every checkpoint, it fits gradient-boosted trees (absolute-error loss)
that predict ``log(finish / time at the checkpoint)`` from what the splits say there (the log
pace so far, and every segment's log pace relative to it), and scores their finish estimates
(MAE in minutes):

* ``same_day``: trained on a random half of **this very race** and scored on the other half,
  and the other way round (``--seed``): a model that knows the day's weather, course and field
  as no live forecast can, since the runners it learns from finish after the runners it
  predicts. Its error is close to what the splits cannot tell about a runner on that day.
* ``same_day_sex_age``: the same, also given each runner's sex and age.
* ``history`` (with ``--history``): trained on the history's runners only, scored on the whole
  race: a strong offline model without any news of the day.
* ``constant_pace``: the bare baseline measured in the same run, ``time * finish distance /
  checkpoint distance``; every figure has its ratio to it beside it (``*_ratio``).

Only runners timed at every checkpoint are used (trained on and scored), so compare it with
the predictor's errors on the same runners. A target below ``same_day_sex_age`` at a
checkpoint asks a live forecast to know a runner's finish better than a model trained on that
day's own finishes does.

    python bench/prediction_floor.py RACE.csv [--history PAST.csv ...] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livetrack.evaluation.formats import BOSTON_CHECKPOINTS, parse_clock

TARGETS_MIN = {"20K": 8.0, "30K": 4.0, "35K": 2.2, "40K": 0.70}
"""The marathon MAE targets of the predictions issue, for the verdict column."""


def load(path: str) -> tuple[list[list[float]], list[list[float]]]:
    """(times at every checkpoint, [female, age]) of the runners timed everywhere, in order."""
    names = [name for name, _ in BOSTON_CHECKPOINTS[:-1]]
    times: list[list[float]] = []
    people: list[list[float]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            clock = [parse_clock(row.get(n, "") or "") for n in names]
            clock.append(parse_clock(row.get("Official Time", "") or ""))
            if any(t is None or t <= 0 for t in clock):
                continue
            ts = [float(t) for t in clock if t is not None]
            if any(b <= a for a, b in itertools.pairwise(ts)):
                continue
            try:
                age = float(row.get("Age", "") or "nan")
            except ValueError:
                age = float("nan")
            times.append(ts)
            people.append([1.0 if row.get("M/F") == "F" else 0.0, age])
    return times, people


def features(np: Any, times: Any, people: Any, c: int, sex_age: bool) -> tuple[Any, Any]:
    """Features at checkpoint c (log pace, each segment's log pace relative to it) and the
    target log(finish / time at c)."""
    dist = np.array([d for _, d in BOSTON_CHECKPOINTS])
    pace = np.log(times[:, c] / dist[c])
    before = np.concatenate([np.zeros((len(times), 1)), times[:, : c + 1]], axis=1)
    bounds = np.concatenate([[0.0], dist[: c + 1]])
    seg = np.log(np.diff(before, axis=1) / np.diff(bounds)) - pace[:, None]
    cols = [pace[:, None], seg] + ([people] if sex_age else [])
    return np.hstack(cols), np.log(times[:, -1] / times[:, c])


def mae_min(np: Any, times: Any, c: int, predicted_log: Any) -> float:
    return float(np.abs(times[:, c] * np.exp(predicted_log) - times[:, -1]).mean() / 60.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("race", help="Boston-format results of the race to bound")
    p.add_argument("--history", action="append", default=[], help="earlier editions (repeat)")
    p.add_argument("--seed", type=int, default=1, help="random split of the race (default 1)")
    args = p.parse_args(argv)
    try:
        import numpy as np
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        print("prediction_floor: needs numpy and scikit-learn (pip install scikit-learn)")
        return 2

    def model() -> Any:
        return HistGradientBoostingRegressor(loss="absolute_error", max_iter=300, random_state=0)

    t_list, p_list = load(args.race)
    if len(t_list) < 200:
        print(f"prediction_floor: {args.race}: {len(t_list)} runners timed everywhere, need 200")
        return 2
    times, people = np.array(t_list), np.array(p_list)
    halves = np.random.default_rng(args.seed).random(len(times)) < 0.5
    past: tuple[Any, Any] | None = None
    if args.history:
        loaded = [load(path) for path in args.history]
        past = (
            np.array([t for ts, _ in loaded for t in ts]),
            np.array([q for _, qs in loaded for q in qs]),
        )
    dist = [d for _, d in BOSTON_CHECKPOINTS]
    rows: dict[str, dict[str, float]] = {}
    for c, (name, _) in enumerate(BOSTON_CHECKPOINTS[:-1]):
        base = mae_min(np, times, c, np.full(len(times), np.log(dist[-1] / dist[c])))
        row = {"constant_pace": round(base, 3)}
        splits, y = features(np, times, people, c, False)  # what the history model reads too
        with_people, _ = features(np, times, people, c, True)
        for label, x in (("same_day", splits), ("same_day_sex_age", with_people)):
            guess = np.empty(len(times))
            for part in (halves, ~halves):
                guess[~part] = model().fit(x[part], y[part]).predict(x[~part])
            row[label] = round(mae_min(np, times, c, guess), 3)
        if past is not None:
            x_past, y_past = features(np, past[0], past[1], c, False)
            guess = model().fit(x_past, y_past).predict(splits)
            row["history"] = round(mae_min(np, times, c, guess), 3)
        for key in [k for k in row if k != "constant_pace"]:
            row[f"{key}_ratio"] = round(row[key] / base, 3)
        rows[name] = row
        target = TARGETS_MIN.get(name)
        verdict = ""
        if target is not None:
            verdict = f"target {target:.2f}: " + (
                "below the same-day floor" if target < row["same_day_sex_age"] else "above it"
            )
        print(
            f"{name:>5}  constant pace {base:6.2f}  same day {row['same_day']:6.2f}  "
            f"+ sex, age {row['same_day_sex_age']:6.2f}"
            + (f"  history {row['history']:6.2f}" if "history" in row else "")
            + f"  {verdict}",
            file=sys.stderr,
        )
    below = [n for n, t in TARGETS_MIN.items() if t < rows[n]["same_day_sex_age"]]
    out = {
        "race": Path(args.race).name,
        "runners": len(times),
        "history_runners": 0 if past is None else len(past[0]),
        "seed": args.seed,
        "mae_min": rows,
        "targets_below_same_day_floor": below,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
