"""Leave-one-out scoring of the finish-time predictor over several races.

Every race (every edition of a multi-edition file is a race of its own) is held out in turn
and replayed (:func:`livetrack.evaluation.replay.evaluate`) twice: without history, and with the
history a race director would have: the earlier editions of the same race where there are
any, else the race's other editions. Races are "the same race" when they come from files of
one format (one course). Nothing else is learnt from the other races: the predictor's
constants are not fitted to any of them.

Per format, mode (``history`` / ``none``) and checkpoint the races' scores are summarised by
their mean (each race counting once) and their worst case: the largest mean absolute error,
the coverage of the 80% interval furthest from 80%, the least gain over constant pace.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from livetrack.evaluation.formats import RaceResults, load_results
from livetrack.evaluation.scoring import CheckpointScore, evaluate

__all__ = ["TARGETS", "HeldOut", "detect_format", "held_out", "leave_one_out", "summary"]

#: Marathon targets: finish MAE in minutes at these checkpoints, on races never seen.
TARGETS = {"20K": 8.0, "30K": 4.0, "35K": 2.2, "40K": 0.70}
#: The 80% interval should hold the finish this often, at every checkpoint.
COVERAGE = (0.75, 0.85)
#: Without history, the estimate at halfway should beat constant pace by at least this share.
HALF_GAIN = 0.35


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One race to hold out: ``family`` is its course (the file's format), ``year`` its
    edition (from the file, or a four-digit year in the file name; None if unknown)."""

    name: str
    family: str
    year: int | None
    race: RaceResults


def detect_format(path: str | Path) -> str:
    """The results format of ``path`` from its header line."""
    with Path(path).open(encoding="utf-8-sig") as fh:
        header = fh.readline()
    if "Official Time" in header and "Bib" in header:
        return "boston"
    if "year" in header and "Time" in header:
        return "westernstates"
    raise ValueError(f"{path}: cannot tell its results format; give --format")


def held_out(paths: list[str], fmt: str = "auto") -> list[HeldOut]:
    """Every race in ``paths`` (one per edition of a multi-edition file)."""
    out: list[HeldOut] = []
    for path in paths:
        family = detect_format(path) if fmt == "auto" else fmt
        results = load_results(path, family)
        editions = results.editions()
        stem = Path(path).stem
        if editions:
            for year in editions:
                out.append(HeldOut(f"{family} {year}", family, year, results.select([year])))
        else:
            found = re.findall(r"(?<!\d)(\d{4})(?!\d)", stem)
            named = int(found[-1]) if found else None
            out.append(HeldOut(f"{family} {named}" if named else stem, family, named, results))
    names = [h.name for h in out]
    if len(set(names)) != len(names):
        raise ValueError("two results files hold the same race")
    return out


def history_for(race: HeldOut, races: list[HeldOut]) -> list[tuple[float | None, ...]]:
    """Earlier editions of the same race, else its other editions."""
    same = [h for h in races if h.family == race.family and h is not race]
    earlier = [
        h for h in same if h.year is not None and race.year is not None and h.year < race.year
    ]
    return [r.times for h in (earlier or same) for r in h.race.runners]


def leave_one_out(
    races: list[HeldOut], *, progress: TextIO | None = None
) -> dict[tuple[str, str], list[tuple[str, list[CheckpointScore]]]]:
    """Replay each race with and without history; ``(family, mode) -> [(race, scores)]``."""
    out: dict[tuple[str, str], list[tuple[str, list[CheckpointScore]]]] = {}
    for race in races:
        for mode in ("history", "none"):
            history = history_for(race, races) if mode == "history" else []
            if progress is not None:
                progress.write(f"{race.name}, {mode}: {len(history)} history runners\n")
                progress.flush()
            scores = evaluate(race.race, history or None)
            out.setdefault((race.family, mode), []).append((race.name, scores))
    return out


def _round(x: float, places: int = 3) -> float | None:
    return None if math.isnan(x) else round(x, places)


def summary(
    results: dict[tuple[str, str], list[tuple[str, list[CheckpointScore]]]],
) -> dict[str, Any]:
    """Mean and worst case per family, mode and checkpoint, and the targets' verdicts."""
    families: dict[str, Any] = {}
    verdicts: dict[str, bool] = {}
    for (family, mode), per_race in sorted(results.items()):
        table: dict[str, Any] = {}
        names = [s.name for s in per_race[0][1]]
        for c, name in enumerate(names):
            scored = [(race, scores[c]) for race, scores in per_race if scores[c].n]
            if not scored:
                continue
            maes = [s.mae_min for _, s in scored]
            covers = [s.coverage_pct / 100.0 for _, s in scored]
            gains = [1.0 - s.abs_err_s / s.base_abs_err_s for _, s in scored if s.base_abs_err_s]
            worst_mae = max(scored, key=lambda rs: rs[1].mae_min)
            worst_cover = max(scored, key=lambda rs: abs(rs[1].coverage_pct / 100.0 - 0.8))
            table[name] = {
                "races": len(scored),
                "n": sum(s.n for _, s in scored),
                "mae_mean": _round(sum(maes) / len(maes)),
                "mae_worst": _round(worst_mae[1].mae_min),
                "mae_worst_race": worst_mae[0],
                "cover_mean": _round(sum(covers) / len(covers)),
                "cover_worst": _round(worst_cover[1].coverage_pct / 100.0),
                "cover_worst_race": worst_cover[0],
                "base_mae_mean": _round(sum(s.base_mae_min for _, s in scored) / len(scored)),
                "gain_mean": _round(sum(gains) / len(gains)) if gains else None,
                "gain_worst": _round(min(gains)) if gains else None,
            }
            covered = all(COVERAGE[0] <= c <= COVERAGE[1] for c in covers)
            verdicts[f"{family}/{mode}/{name}/coverage"] = covered
            if name in TARGETS:
                verdicts[f"{family}/{mode}/{name}/mae"] = max(maes) <= TARGETS[name]
            if name == "Half" and mode == "none" and gains:
                verdicts[f"{family}/{mode}/Half/gain"] = min(gains) >= HALF_GAIN
        families.setdefault(family, {})[mode] = table
    return {
        "races": sorted({race for per in results.values() for race, _ in per}),
        "families": families,
        "targets": {k: verdicts[k] for k in sorted(verdicts)},
        "targets_met": sum(verdicts.values()),
        "targets_total": len(verdicts),
    }


#: The figures of a checkpoint in the JSON line, in this order.
COLUMNS = (
    "races",
    "mae_mean",
    "mae_worst",
    "cover_mean",
    "cover_worst",
    "gain_mean",
    "gain_worst",
)


def compact(summ: dict[str, Any]) -> dict[str, Any]:
    """The summary as printed on one line: per family, mode and checkpoint the figures of
    :data:`COLUMNS`; the targets met, their number, and the ones missed by name."""
    return {
        "races": len(summ["races"]),
        "columns": list(COLUMNS),
        "families": {
            family: {
                mode: {cp: [row[c] for c in COLUMNS] for cp, row in table.items()}
                for mode, table in modes.items()
            }
            for family, modes in summ["families"].items()
        },
        "targets_met": summ["targets_met"],
        "targets_total": summ["targets_total"],
        "targets_missed": [k for k, ok in summ["targets"].items() if not ok],
    }


def format_summary(summ: dict[str, Any]) -> str:
    """The summary as tables: per family and mode, mean and worst per checkpoint."""
    lines: list[str] = []
    for family, modes in summ["families"].items():
        for mode, table in modes.items():
            lines.append(f"\n{family}, {'with history' if mode == 'history' else 'no history'}")
            head = (
                f"{'checkpoint':<20} {'races':>5} {'MAE mean':>8} {'worst':>7} "
                f"{'cover mean':>10} {'worst':>6} {'base MAE':>8} {'gain':>5} {'worst':>5}"
            )
            lines += [head, "-" * len(head)]
            for name, row in table.items():
                gain = row["gain_mean"]
                worst_gain = row["gain_worst"]
                lines.append(
                    f"{name:<20} {row['races']:>5} {row['mae_mean']:>8.2f} "
                    f"{row['mae_worst']:>7.2f} {100 * row['cover_mean']:>9.1f}% "
                    f"{100 * row['cover_worst']:>5.1f}% {row['base_mae_mean']:>8.2f} "
                    f"{'-' if gain is None else f'{100 * gain:.0f}%':>5} "
                    f"{'-' if worst_gain is None else f'{100 * worst_gain:.0f}%':>5}"
                )
    return "\n".join(lines).lstrip("\n")


def format_per_race(
    results: dict[tuple[str, str], list[tuple[str, list[CheckpointScore]]]],
) -> str:
    """Each held-out race's coverage of the 80% interval per checkpoint, a row per race and
    mode ("!" outside the target range; "-" where nobody was scored there)."""
    lines: list[str] = []
    for (family, mode), per_race in sorted(results.items()):
        names = [s.name for s in per_race[0][1]]
        lines.append(
            f"\n{family}, {'with history' if mode == 'history' else 'no history'}: "
            "coverage of the 80% interval per checkpoint"
        )
        lines.append(f"{'race':<20} " + " ".join(f"{n[:6]:>7}" for n in names))
        for race, scores in per_race:
            cells = []
            for s in scores:
                if not s.n:
                    cells.append(f"{'-':>7}")
                    continue
                inside = COVERAGE[0] <= s.coverage_pct / 100.0 <= COVERAGE[1]
                cells.append(f"{s.coverage_pct:>6.1f}{' ' if inside else '!'}")
            lines.append(f"{race:<20} " + " ".join(cells))
    return "\n".join(lines).lstrip("\n")


def run(
    paths: list[str], fmt: str, quiet: bool, table: TextIO | None, per_race: bool = False
) -> int:
    """Leave-one-out over ``paths``: the tables on ``table`` (if any; with ``per_race``, each
    race's coverage as well), one JSON line on stdout. Returns the exit status."""
    try:
        races = held_out(paths, fmt)
    except (OSError, ValueError) as exc:
        print(f"evaluate-predictions: {exc}", file=sys.stderr)
        return 2
    if len(races) < 2:
        print("evaluate-predictions: leave-one-out needs at least two races", file=sys.stderr)
        return 2
    results = leave_one_out(races, progress=None if quiet else sys.stderr)
    summ = summary(results)
    if table is not None:
        print(format_summary(summ), file=table)
        if per_race:
            print("\n" + format_per_race(results), file=table)
    print(json.dumps(compact(summ), separators=(",", ":")))
    return 0
