"""``livetrack evaluate-predictions``: replay a past race and score the finish-time predictor.

Every passing of the evaluated race is fed to :class:`~livetrack.domain.predict.Predictor` in
race order (all passings sorted by elapsed time, i.e. as if every runner started together), and
after each passing the runner's finish estimate is requested. For runners who finished, the
estimate made at each checkpoint is scored against the true finish time; the constant-pace
projection ``elapsed * finish distance / checkpoint distance`` is scored alongside. Non-finishers
are replayed too (they are part of the field) and counted per checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from livetrack.domain.predict import Predictor
from livetrack.evaluation.formats import FORMATS, RaceResults, load_results

__all__ = ["CheckpointScore", "evaluate", "format_table", "main"]


@dataclass(slots=True)
class CheckpointScore:
    """Accumulated scores of the finish estimates made at one checkpoint."""

    name: str
    n: int = 0
    abs_err_s: float = 0.0
    abs_err_pct: float = 0.0
    covered: int = 0
    base_abs_err_s: float = 0.0
    base_abs_err_pct: float = 0.0
    base_covered: int = 0
    dnf: int = 0
    errors: list[float] = field(default_factory=list)

    def add(self, truth: float, seconds: float, low: float, high: float, baseline: float) -> None:
        """Score one estimate (and its baseline) against the true finish time."""
        self.n += 1
        err = abs(seconds - truth)
        self.abs_err_s += err
        self.abs_err_pct += 100.0 * err / truth
        self.covered += low <= truth <= high
        base = abs(baseline - truth)
        self.base_abs_err_s += base
        self.base_abs_err_pct += 100.0 * base / truth

    @property
    def mae_min(self) -> float:
        return self.abs_err_s / self.n / 60.0 if self.n else float("nan")

    @property
    def base_mae_min(self) -> float:
        return self.base_abs_err_s / self.n / 60.0 if self.n else float("nan")

    @property
    def coverage_pct(self) -> float:
        return 100.0 * self.covered / self.n if self.n else float("nan")


def evaluate(
    race: RaceResults,
    history: list[tuple[float | None, ...]] | None = None,
    *,
    progress: TextIO | None = None,
) -> list[CheckpointScore]:
    """Replay ``race`` through a predictor (with ``history``) and score it per checkpoint.

    Returns one score per checkpoint before the finish, in course order.
    """
    checkpoints = list(race.checkpoints)
    finish = len(checkpoints) - 1
    finish_dist = checkpoints[finish][1]
    predictor = Predictor(checkpoints, history)
    names = [name for name, _ in checkpoints]
    passings: list[tuple[float, int, int]] = []
    for r_idx, runner in enumerate(race.runners):
        for c_idx, t in enumerate(runner.times):
            if t is not None:
                passings.append((t, c_idx, r_idx))
    passings.sort()
    scores = [CheckpointScore(name) for name in names[:finish]]
    total = len(passings)
    step = max(1, total // 20)
    started = time.perf_counter()
    for done, (t, c_idx, r_idx) in enumerate(passings, start=1):
        runner = race.runners[r_idx]
        predictor.observe(runner.runner_id, names[c_idx], t)
        if c_idx != finish:
            est = predictor.estimate(runner.runner_id, "finish")
            truth = runner.finish
            score = scores[c_idx]
            if truth is None:
                score.dnf += 1
            elif est is not None:
                baseline = t * finish_dist / checkpoints[c_idx][1]
                score.add(truth, est.seconds, est.low, est.high, baseline)
        if progress is not None and (done % step == 0 or done == total):
            elapsed = time.perf_counter() - started
            progress.write(f"\rreplayed {done}/{total} passings ({elapsed:.1f} s)")
            if done == total:
                progress.write("\n")
            progress.flush()
    return scores


def format_table(scores: list[CheckpointScore]) -> str:
    """The per-checkpoint table: predictor and constant-pace baseline side by side."""
    header = (
        f"{'checkpoint':<20} {'n':>6} {'MAE min':>8} {'MAE %':>6} {'cover80':>7} "
        f"{'base min':>8} {'base %':>6} {'gain':>6} {'DNF':>5}"
    )
    lines = [header, "-" * len(header)]
    for s in scores:
        if s.n:
            gain = 100.0 * (1.0 - s.abs_err_s / s.base_abs_err_s) if s.base_abs_err_s else 0.0
            lines.append(
                f"{s.name:<20} {s.n:>6} {s.mae_min:>8.2f} {s.abs_err_pct / s.n:>6.2f} "
                f"{s.coverage_pct:>6.1f}% {s.base_mae_min:>8.2f} {s.base_abs_err_pct / s.n:>6.2f} "
                f"{gain:>5.0f}% {s.dnf:>5}"
            )
        else:
            lines.append(
                f"{s.name:<20} {0:>6} {'-':>8} {'-':>6} {'-':>7} {'-':>8} {'-':>6} "
                f"{'-':>6} {s.dnf:>5}"
            )
    return "\n".join(lines)


DESCRIPTION = (
    "Replay a past race in race order (passings sorted by elapsed time, every runner "
    "starting together), ask the finish-time predictor after every passing and print, "
    "per checkpoint, the number of finishers scored, mean absolute error in minutes and "
    "in percent, the share of true finish times inside the 80% interval, the same "
    "errors for the constant-pace projection, the gain over it, and the number of "
    "estimates made for runners who did not finish."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's options, on its own parser or on the ``livetrack`` subcommand's."""
    p.add_argument(
        "results",
        nargs="+",
        help="results CSV of the race to replay (several with --leave-one-out)",
    )
    p.add_argument(
        "--leave-one-out",
        action="store_true",
        help="hold out each race of the files in turn (each edition of a multi-edition file "
        "is a race), replay it with and without history (earlier editions of the same race, "
        "else its other editions), print the mean and worst case per checkpoint on stderr "
        "and one JSON line on stdout",
    )
    p.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="FILE",
        help="results CSV of earlier editions (repeatable); for files holding several editions "
        "only editions before the evaluated one are used (see --history-years)",
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=(*FORMATS, "auto"),
        help="results file format (default: told from the file's header)",
    )
    p.add_argument(
        "--year",
        type=int,
        help="edition to replay from a multi-edition file (westernstates); default: the latest",
    )
    p.add_argument(
        "--history-years",
        metavar="FIRST-LAST",
        help="editions of the history files to use, e.g. 1986-2014; default: every edition "
        "before the replayed one (never the replayed edition itself)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="replay only N runners, evenly spaced through the results file (every "
        "(total/N)-th row, the same sample every time), so that every pace is represented",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livetrack evaluate-predictions", description=DESCRIPTION)
    add_arguments(p)
    return p


def _year_range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    return int(first), int(last or first)


def main(argv: list[str]) -> int:
    """Run the command; returns the process exit status (0 ok, 2 usage or input error)."""
    return run(_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the command on parsed arguments (see :func:`add_arguments`)."""
    from livetrack.evaluation import loo

    if args.leave_one_out:
        return loo.run(args.results, args.format, args.quiet, sys.stderr)
    if len(args.results) != 1:
        print("evaluate-predictions: one results file, or --leave-one-out", file=sys.stderr)
        return 2
    args.results = args.results[0]
    try:
        fmt = loo.detect_format(args.results) if args.format == "auto" else args.format
        race = load_results(args.results, fmt)
        editions = race.editions()
        year: int | None = args.year
        if year is not None and year not in editions:
            raise ValueError(f"edition {year} not in {args.results}")
        if editions:
            year = year if year is not None else editions[-1]
            race = race.select([year])
        if args.limit is not None:
            race = race.sample(args.limit)
        history: list[tuple[float | None, ...]] = []
        years = _year_range(args.history_years) if args.history_years else None
        for path in args.history:
            past = load_results(path, fmt)
            if past.checkpoints != race.checkpoints:
                raise ValueError(f"{path}: checkpoints differ from {args.results}")
            for runner in past.runners:
                if runner.edition is not None:
                    if year is not None and runner.edition >= year:
                        continue
                    if years is not None and not years[0] <= runner.edition <= years[1]:
                        continue
                history.append(runner.times)
    except (OSError, ValueError) as exc:
        print(f"evaluate-predictions: {exc}", file=sys.stderr)
        return 2
    finishers = sum(1 for r in race.runners if r.finish is not None)
    title = f"{args.results}" + (f" edition {year}" if year is not None else "")
    print(
        f"{title}: {len(race.runners)} runners ({finishers} finished), "
        f"history: {len(history)} runners"
    )
    scores = evaluate(race, history or None, progress=None if args.quiet else sys.stderr)
    print(format_table(scores))
    return 0
