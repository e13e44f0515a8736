"""Loaders for published race results with checkpoint splits.

Two formats are understood:

* ``boston``: Boston Athletic Association results as CSV with columns ``5K, 10K, 15K, 20K,
  Half, 25K, 30K, 35K, 40K`` and ``Official Time``; times are cumulative chip times
  ``H:MM:SS``; ``-`` or blank where missing; a bare number is read as a spreadsheet day
  fraction. Runner ids are the bib numbers.
* ``westernstates``: Western States 100 results as CSV with columns ``year``, ``Place``,
  ``Time`` (finish) and the 20 aid stations in course order; times are cumulative seconds,
  ``NA`` where not timed; non-finishers have no finish time. Runner ids are ``YEAR-PLACE``.
  Station distances are the race's published course distances in miles
  (:data:`WESTERN_STATES_MILES`); they describe the modern course and are approximate for
  editions run on a different route.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from livetrack.domain.durations import parse_hms

__all__ = [
    "BOSTON_CHECKPOINTS",
    "FORMATS",
    "WESTERN_STATES_CHECKPOINTS",
    "WESTERN_STATES_MILES",
    "RaceResults",
    "RunnerResult",
    "load_boston",
    "load_results",
    "load_western_states",
]

METRES_PER_MILE = 1609.344

BOSTON_COLUMNS = ("5K", "10K", "15K", "20K", "Half", "25K", "30K", "35K", "40K", "Official Time")
BOSTON_CHECKPOINTS: tuple[tuple[str, float], ...] = (
    ("5K", 5000.0),
    ("10K", 10000.0),
    ("15K", 15000.0),
    ("20K", 20000.0),
    ("Half", 21097.5),
    ("25K", 25000.0),
    ("30K", 30000.0),
    ("35K", 35000.0),
    ("40K", 40000.0),
    ("finish", 42195.0),
)

WESTERN_STATES_MILES: tuple[tuple[str, str, float], ...] = (
    ("Lyon.Ridge", "Lyon Ridge", 10.3),
    ("Red.Star.Ridge", "Red Star Ridge", 15.8),
    ("Duncan.Canyon", "Duncan Canyon", 24.4),
    ("Robinson.Flat", "Robinson Flat", 30.3),
    ("Miller's.Defeat", "Miller's Defeat", 34.4),
    ("Dusty.Corners", "Dusty Corners", 38.0),
    ("Last.Chance", "Last Chance", 43.3),
    ("Devil's.Thumb", "Devil's Thumb", 47.8),
    ("El.Dorado.Creek", "El Dorado Creek", 52.9),
    ("Michigan.Bluff", "Michigan Bluff", 55.7),
    ("Foresthill", "Foresthill", 62.0),
    ("Dardanelles.(Cal-1)", "Dardanelles (Cal-1)", 65.7),
    ("Peachstone.(Cal-2)", "Peachstone (Cal-2)", 70.7),
    ("Rucky.Chucky", "Rucky Chucky", 78.0),
    ("Green.Gate", "Green Gate", 79.8),
    ("Auburn.Lake.Trails", "Auburn Lake Trails", 85.2),
    ("Brown's.Bar", "Brown's Bar", 89.9),
    ("Highway.49", "Highway 49", 93.5),
    ("No.Hands.Bridge", "No Hands Bridge", 96.8),
    ("Robie.Point", "Robie Point", 98.9),
    ("Time", "finish", 100.2),
)
"""(CSV column, checkpoint name, miles from the start) of the Western States 100 course."""

WESTERN_STATES_CHECKPOINTS: tuple[tuple[str, float], ...] = tuple(
    (name, miles * METRES_PER_MILE) for _, name, miles in WESTERN_STATES_MILES
)

FORMATS = ("boston", "westernstates")


@dataclass(frozen=True, slots=True)
class RunnerResult:
    """One runner: cumulative elapsed seconds at every checkpoint (``None`` where missing)."""

    runner_id: str
    times: tuple[float | None, ...]
    edition: int | None = None

    @property
    def finish(self) -> float | None:
        """Finish time in seconds, ``None`` for a non-finisher."""
        return self.times[-1]


@dataclass(frozen=True, slots=True)
class RaceResults:
    """Results of one race (or several editions of it) on one list of checkpoints."""

    checkpoints: tuple[tuple[str, float], ...]
    runners: tuple[RunnerResult, ...]

    def editions(self) -> list[int]:
        """Sorted distinct editions (years); empty if the format has none."""
        return sorted({r.edition for r in self.runners if r.edition is not None})

    def select(self, keep: Iterable[int]) -> RaceResults:
        """Only the runners of the given editions."""
        wanted = set(keep)
        return RaceResults(self.checkpoints, tuple(r for r in self.runners if r.edition in wanted))

    def sample(self, n: int) -> RaceResults:
        """``n`` runners evenly spaced through the file (rows ``k * total // n``), the same
        every time; all of them if ``n`` is at least their number. Results files are usually
        in finishing order, so this keeps the spread of paces, unlike the first ``n`` rows."""
        total = len(self.runners)
        if n >= total:
            return self
        picked = tuple(self.runners[k * total // n] for k in range(max(0, n)))
        return RaceResults(self.checkpoints, picked)

    def halves(self, seed: int) -> tuple[RaceResults, RaceResults]:
        """The runners split in two at random (each with probability one half, seeded: the
        same split every time for one seed); every runner is in exactly one half."""
        rng = random.Random(seed)
        first: list[RunnerResult] = []
        second: list[RunnerResult] = []
        for runner in self.runners:
            (first if rng.random() < 0.5 else second).append(runner)
        return RaceResults(self.checkpoints, tuple(first)), RaceResults(
            self.checkpoints, tuple(second)
        )


def parse_clock(text: str) -> float | None:
    """Seconds from ``H:MM:SS`` (or ``M:SS``), a day fraction, or ``None`` for ``-``/blank."""
    s = text.strip()
    if not s or s in {"-", "NA"}:
        return None
    if ":" in s:
        total = parse_hms(s)
        return total if total > 0 else None
    value = float(s)
    if not math.isfinite(value) or value <= 0:
        return None
    return value * 86400.0 if value < 1.0 else value


def load_boston(path: str | Path) -> RaceResults:
    """Boston Marathon results; raises ``ValueError`` if a required column is absent."""
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        missing = [c for c in (*BOSTON_COLUMNS, "Bib") if c not in header]
        if missing:
            raise ValueError(f"{path}: not a Boston results file, missing columns {missing}")
        cols = [header.index(c) for c in BOSTON_COLUMNS]
        bib_col = header.index("Bib")
        runners: list[RunnerResult] = []
        seen: set[str] = set()
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            rid = row[bib_col].strip() or f"row{line_no}"
            if rid in seen:
                rid = f"{rid}#{line_no}"
            seen.add(rid)
            times = tuple(parse_clock(row[c]) if c < len(row) else None for c in cols)
            runners.append(RunnerResult(rid, times))
    return RaceResults(BOSTON_CHECKPOINTS, tuple(runners))


def load_western_states(path: str | Path) -> RaceResults:
    """Western States 100 results (all editions in the file, non-finishers included)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        missing = [c for c, _, _ in WESTERN_STATES_MILES if c not in fields]
        if missing or "year" not in fields:
            raise ValueError(f"{path}: not a Western States results file, missing {missing}")
        runners: list[RunnerResult] = []
        for line_no, row in enumerate(reader, start=2):
            year = int(row["year"])
            place = (row.get("Place") or "").strip() or f"row{line_no}"
            times = tuple(parse_clock(row[c] or "") for c, _, _ in WESTERN_STATES_MILES)
            runners.append(RunnerResult(f"{year}-{place}", times, year))
    return RaceResults(WESTERN_STATES_CHECKPOINTS, tuple(runners))


def load_results(path: str | Path, fmt: str) -> RaceResults:
    """Load ``path`` in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "boston":
        return load_boston(path)
    if fmt == "westernstates":
        return load_western_states(path)
    raise ValueError(f"unknown results format {fmt!r}; expected one of {FORMATS}")
