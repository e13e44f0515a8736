"""Alert timing error: when "about N minutes from you" comes, against when it should have.

Two simulated races are played through the fold while a clock steps on (every ``--step``
seconds), and the alerts are decided for supporters standing at checkpoints exactly as the
service decides them (``livetrack.evaluation.alerts``, through the alert loop's
:class:`~livetrack.domain.alert_plan.Plan`):

- ``boston``: a marathon on real pacing: a sample of the Boston Marathon 2015 runners' real
  splits (5K … 40K, finish) as chip reads, starts spread over 25 minutes; supporters at 30K
  and at 40K with a 3-minute lead;
- ``tenk``: the demo's Heaton Park 10K from the built-in simulator; supporters at the Hall and
  at the Boating Lake (lap 2).

The error is the alert's time minus (the runner's actual passing minus the lead): negative is
early, positive late. The baseline is a bare even-pace extrapolation from the runner's latest
passing, timed the same way in the same run. Each race is also played with every watch looked
at every step (``every_watch``): how many watches got the very same alerts at the same steps
(``same_alerts_as_every_watch``), and how many looks each way took. The last line is one JSON
object.

Data: ``boston_2015.csv`` from ``LIVETRACK_DATA``, else ``../shared/data`` beside the checkout.
Usage: ``python bench/alerts_timing.py [--runners 300] [--watched 40] [--step 15]`` (the clock
step adds up to one step of lateness; the service decides every second). Most of the time
goes to the predictor catching up with the field after each step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livetrack import sim
from livetrack.cli import demo_event
from livetrack.domain.alert_plan import Plan
from livetrack.domain.alerts import Spot, Watch
from livetrack.domain.event import Event, load_event_text
from livetrack.domain.records import ChipRead, GunStart, ParticipantRecord, Record
from livetrack.domain.state import RaceState
from livetrack.evaluation.alerts import play, summary
from livetrack.evaluation.formats import load_boston

BOSTON_TOML = """
[event]
id = "boston"
name = "Marathon"
date = "2026-04-20"
timezone = "America/New_York"

[[course]]
id = "m"
checkpoints = [
  { id = "start", name = "Start", distance = 0 },
  %s
]

[[race]]
id = "m"
name = "Marathon"
course = "m"
rank_by = "chip"
max_speed_mps = 7.0

[[timing_point]]
id = "start"
checkpoint = "start"
%s
"""


def data_dir() -> Path:
    env = os.environ.get("LIVETRACK_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def boston(runners: int, seed: int) -> tuple[Event, list[tuple[int, Record]]]:
    results = load_boston(data_dir() / "boston_2015.csv")
    cps = [(name.lower(), dist) for name, dist in results.checkpoints]
    lines = ",\n  ".join(
        f'{{ id = "{i}", name = "{i.upper() if i != "finish" else "Finish"}", distance = {d} }}'
        for i, d in cps
    )
    points = "".join(f'\n[[timing_point]]\nid = "{i}"\ncheckpoint = "{i}"\n' for i, _ in cps)
    event = load_event_text(BOSTON_TOML % (lines, points))
    gun = int(datetime.combine(event.date, dtime(10, 0), event.tz).timestamp() * 1000)
    complete = [r for r in results.runners if all(t is not None for t in r.times)]
    rng = random.Random(seed)
    chosen = complete[:: max(1, len(complete) // runners)][:runners]
    out: list[tuple[int, Record]] = [(gun, GunStart("m", gun, id="gun"))]
    for n, r in enumerate(chosen):
        bib = str(n + 1)
        out.append((gun - 60_000, ParticipantRecord(bib, "m", "R", bib, (f"C{bib}",))))
        start = gun + int(rng.uniform(0, 25 * 60) * 1000)
        out.append((start, ChipRead("mat-start", "start", f"C{bib}", start)))
        for (cp, _), t in zip(cps, r.times, strict=True):
            at = start + int((t or 0) * 1000)
            out.append((at, ChipRead(f"mat-{cp}", cp, f"C{bib}", at)))
    return event, out


def tenk(runners: int, seed: int) -> tuple[Event, list[tuple[int, Record]]]:
    event = demo_event()
    gun = int(datetime.combine(event.date, dtime(10, 0), event.tz).timestamp() * 1000)
    people = [p for p in sim.make_participants(event, {"tenk": runners}) if p.race == "tenk"]
    out: list[tuple[int, Record]] = [(gun - 60_000, p) for p in people]
    for a in sim.plan(event, people, {"tenk": gun}, seed=seed):
        if a.kind == "gun":
            out.append((a.at_ms, GunStart(a.race, a.at_ms, a.wave, id=f"gun-{a.wave}")))
        elif a.read is not None:
            b = a.read
            read = ChipRead(str(b["reader"]), str(b["point"]), str(b["chip"]), a.at_ms)
            out.append((a.at_ms, read))
    return event, out


def run(
    name: str,
    made: tuple[Event, list[tuple[int, Record]]],
    spots: list[str],
    watched: int,
    step_s: int,
) -> dict[str, object]:
    event, records = made
    bibs = sorted(
        {r.bib for _, r in records if isinstance(r, ParticipantRecord)}, key=lambda b: int(b)
    )
    picked = bibs[:: max(1, len(bibs) // watched)][:watched]
    watches = [Watch(f"s-{s}", b, Spot(s), 180) for s in spots for b in picked]
    t0 = time.perf_counter()
    plan = Plan()
    timings = play(RaceState(event), records, watches, step_ms=step_s * 1000, plan=plan)
    took = time.perf_counter() - t0
    figures = summary(timings)
    out: dict[str, object] = {"runners": len(bibs), "spots": spots, **figures}
    for k in ("median_abs_error_s", "p90_abs_error_s"):
        base = figures[f"naive_{k}"]
        out[f"{k}_ratio_to_naive"] = round(float(figures[k]) / float(base), 2) if base else None
    out["seconds"] = round(took, 1)
    # the same race with every watch looked at every step: the plan should change nothing
    every = play(RaceState(event), records, watches, step_ms=step_s * 1000)
    steps = (max(t for t, _ in records) + 15 * 60_000 - min(t for t, _ in records)) // (
        step_s * 1000
    ) + 1
    out["every_watch"] = {
        k: v
        for k, v in summary(every).items()
        if k in ("alerted", "median_error_s", "p90_abs_error_s")
    }
    out["same_alerts_as_every_watch"] = sum(
        a.when == b.when for a, b in zip(timings, every, strict=True)
    )
    out["watches_examined"] = plan.examined
    out["watches_examined_every_watch"] = steps * len(watches)
    print(name, json.dumps(out), file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runners", type=int, default=300)
    p.add_argument("--watched", type=int, default=40)
    p.add_argument("--step", type=int, default=15, help="clock step, seconds")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    out: dict[str, object] = {"lead_s": 180, "step_s": args.step}
    if (data_dir() / "boston_2015.csv").exists():
        made = boston(args.runners, args.seed)
        out["boston"] = run("boston", made, ["30k", "40k"], args.watched, args.step)
    else:
        print(f"boston_2015.csv not found in {data_dir()}: boston skipped", file=sys.stderr)
    out["tenk"] = run(
        "tenk", tenk(min(args.runners, 400), args.seed), ["hall", "lake2"], args.watched, args.step
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
