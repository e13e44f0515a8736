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

from livetrack.evaluation.formats import FORMATS, load_results
from livetrack.evaluation.scoring import (
    CheckpointScore,
    evaluate,
    evaluate_same_day,
    format_table,
)
from livetrack.evaluation.variants import VARIANTS, variant

__all__ = ["CheckpointScore", "evaluate", "format_table", "main"]

# the scoring itself lives in livetrack.evaluation.scoring (leave-one-out uses it too)


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
    p.add_argument(
        "--per-race",
        action="store_true",
        help="with --leave-one-out, also print each held-out race's coverage of the 80%% "
        "interval per checkpoint on stderr",
    )
    p.add_argument(
        "--variant",
        choices=VARIANTS,
        help="replay a stress variant of the race instead (history unchanged): warm (late "
        "slowdown from 15K, larger for slower runners), cold (late speed-up) or half (a "
        "random half of the field); see livetrack.evaluation.variants",
    )
    p.add_argument(
        "--same-day",
        action="store_true",
        help="replay each half of the race (a random split, --seed) with the other half as "
        "its history and score both: the predictor knowing the day as no live race lets it, "
        "so what is left of its errors is what the splits cannot tell (not with --history)",
    )
    p.add_argument(
        "--seed", type=int, default=1, help="random seed of --variant and --same-day (default: 1)"
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
        if args.same_day or args.variant:
            flag = "--same-day" if args.same_day else "--variant"
            print(
                f"evaluate-predictions: {flag} replays one race, not --leave-one-out",
                file=sys.stderr,
            )
            return 2
        return loo.run(args.results, args.format, args.quiet, sys.stderr, args.per_race)
    if len(args.results) != 1:
        print("evaluate-predictions: one results file, or --leave-one-out", file=sys.stderr)
        return 2
    if args.same_day and args.history:
        print(
            "evaluate-predictions: --same-day takes its history from the race itself, not "
            "--history",
            file=sys.stderr,
        )
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
        if args.variant is not None:
            race = variant(race, args.variant, args.seed)
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
    if args.variant is not None:
        title += f" ({args.variant} variant, seed {args.seed})"
    progress = None if args.quiet else sys.stderr
    if args.same_day:
        print(
            f"{title}: {len(race.runners)} runners ({finishers} finished), each half replayed "
            f"with the other as history (seed {args.seed})"
        )
        print(format_table(evaluate_same_day(race, args.seed, progress=progress)))
        return 0
    print(
        f"{title}: {len(race.runners)} runners ({finishers} finished), "
        f"history: {len(history)} runners"
    )
    scores = evaluate(race, history or None, progress=progress)
    print(format_table(scores))
    return 0
