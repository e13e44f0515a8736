"""Official result tables, derived from the fold: pure functions, no I/O.

A table lists one race's runners for one division (overall, a gender or a category):
finishers in position order, then runners still out on the course (furthest first), then
DNF, DQ and DNS. The same table feeds the printable page, the CSV and the JSON.

CSV columns (:data:`CSV_COLUMNS` followed by one ``split_<checkpoint>`` per checkpoint):

``position``           place in the division (blank when not ranked)
``bib``, ``name``, ``gender``, ``category``, ``club``
``status``             ``finished``, ``running``, ``DNF``, ``DQ`` or ``DNS``
``gun_time``           finish time from the gun, ``H:MM:SS``
``chip_time``          finish time from the runner's own start, ``H:MM:SS``
``overall_position``, ``gender_position``, ``category_position``
``raw_time``, ``penalty``, ``penalties``
                       (races with obstacles only, after ``chip_time``) the gun time
                       without penalties, the seconds added (``H:MM:SS``) and which
                       obstacles cost them (``The Wall failed +0:30``); ``gun_time`` and
                       ``chip_time`` are then final times, penalties included
``next_standard``      (races with next year's standards only, last before the splits)
                       ``yes`` when the final time meets next year's standard for the
                       runner's category or gender (:mod:`livetrack.domain.standards`)
``split_<id>``         cumulative elapsed time from the runner's own start at checkpoint
                       ``<id>`` (every checkpoint after the start, the finish last),
                       ``H:MM:SS``, blank where the runner has no passing

The ``split_`` columns are what the predictor's ``history`` takes: :func:`history_from_csv`
turns last year's CSV into one sequence of cumulative elapsed seconds per runner.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livetrack.domain import durations
from livetrack.domain.durations import fmt_hms as fmt_hms
from livetrack.domain.expect import start_ms
from livetrack.domain.obstacles import describe
from livetrack.domain.ranking import ALL
from livetrack.domain.standards import meets_next
from livetrack.domain.state import RaceState, Runner

CSV_COLUMNS = (
    "position",
    "bib",
    "name",
    "gender",
    "category",
    "club",
    "status",
    "gun_time",
    "chip_time",
    "overall_position",
    "gender_position",
    "category_position",
)

_ORDER = {"finished": 0, "running": 1, "DNF": 2, "DQ": 3, "DNS": 4}


@dataclass(frozen=True, slots=True)
class ResultRow:
    position: int | None
    bib: str
    name: str
    gender: str
    category: str
    club: str
    status: str
    gun_ms: int | None
    chip_ms: int | None
    overall_position: int | None
    gender_position: int | None
    category_position: int | None
    splits: tuple[int | None, ...]  # cumulative ms from the runner's start, per checkpoint
    reason: str = ""
    #: Obstacle penalties included in ``gun_ms`` and ``chip_ms``, and which obstacles.
    penalty_ms: int = 0
    penalties: str = ""
    #: The finish (final time, by the race's ranking basis) meets next year's standard.
    next_standard: bool = False


@dataclass(frozen=True, slots=True)
class ResultTable:
    race: str
    race_name: str
    division: str
    ranked: bool
    checkpoints: tuple[tuple[str, str, float], ...]  # (id, name, metres) after the start
    rows: tuple[ResultRow, ...]
    obstacles: bool = False
    standards: bool = False


def parse_hms(text: str) -> float | None:
    """Inverse of :func:`fmt_hms` (also ``M:SS``); None for a blank cell."""
    return durations.parse_hms(text, signed=True) if text.strip() else None


def _row(state: RaceState, r: Runner, division: str) -> ResultRow:
    cps = r.race.course.checkpoints
    finish = cps[-1].id
    begin = start_ms(state, r)
    splits = tuple(
        None if (p := r.passings.get(cp.id)) is None or begin is None else p.time_ms - begin
        for cp in cps[1:]
    )
    finished = finish in r.passings and r.status == "ok"
    status = r.status if r.status != "ok" else ("finished" if finished else "running")
    ranked = r.race.ranked and finished
    pen = r.penalty.ms if finished else 0
    gun = state.elapsed(r, finish, "gun") if finished else None
    return ResultRow(
        position=state.position(r, finish, division) if ranked else None,
        bib=r.bib,
        name=r.name,
        gender=r.p.gender,
        category=r.category,
        club=r.p.club,
        status=status,
        gun_ms=None if gun is None else gun + pen,
        chip_ms=None if not finished or splits[-1] is None else splits[-1] + pen,
        overall_position=state.position(r, finish, ALL) if ranked else None,
        gender_position=state.position(r, finish, r.p.gender) if ranked and r.p.gender else None,
        category_position=state.position(r, finish, r.category) if ranked and r.category else None,
        splits=splits,
        reason=r.status_reason if r.status != "ok" else "",
        penalty_ms=pen,
        penalties=describe(r.penalty),
        next_standard=finished and meets_next(r.race, r.p.gender, r.category, r.ranked.get(finish)),
    )


def table(state: RaceState, race_id: str, division: str = ALL) -> ResultTable:
    """The results of ``race_id`` for ``division`` (``all``, a gender or a category)."""
    race = state.event.races[race_id]
    finish = race.course.checkpoints[-1].id
    rows = [
        _row(state, r, division)
        for r in state.runners.values()
        if r.race.id == race_id and division in r.divisions
    ]

    def order(row: ResultRow) -> tuple[int, float, float, str]:
        runner = state.runners[row.bib]
        done = sum(1 for s in row.splits if s is not None)
        ranked_ms = runner.ranked.get(finish)
        key = float(ranked_ms) if row.status == "finished" and ranked_ms is not None else 0.0
        return (_ORDER.get(row.status, 5), key, -done, row.bib.zfill(12))

    rows.sort(key=order)
    return ResultTable(
        race=race.id,
        race_name=race.name,
        division=division,
        ranked=race.ranked,
        checkpoints=tuple((cp.id, cp.name, cp.distance_m) for cp in race.course.checkpoints[1:]),
        rows=tuple(rows),
        obstacles=bool(race.obstacles),
        standards=race.standards is not None and bool(race.standards.next),
    )


def _cell(text: str) -> str:
    """Text as a CSV cell that a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(t: ResultTable) -> str:
    """The table as CSV (columns as documented in this module)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    extra = _OBSTACLE_COLUMNS if t.obstacles else ()
    last = ("next_standard",) if t.standards else ()
    w.writerow(
        [*CSV_COLUMNS[:9], *extra, *CSV_COLUMNS[9:], *last]
        + [f"split_{c}" for c, _, _ in t.checkpoints]
    )
    for r in t.rows:
        w.writerow(
            [
                r.position or "",
                _cell(r.bib),
                _cell(r.name),
                _cell(r.gender),
                _cell(r.category),
                _cell(r.club),
                r.status,
                fmt_hms(r.gun_ms),
                fmt_hms(r.chip_ms),
                *(_penalty_cells(t, r) if t.obstacles else ()),
                r.overall_position or "",
                r.gender_position or "",
                r.category_position or "",
                *(("yes" if r.next_standard else "",) if t.standards else ()),
                *(fmt_hms(s) for s in r.splits),
            ]
        )
    return out.getvalue()


_OBSTACLE_COLUMNS = ("raw_time", "penalty", "penalties")


def _penalty_cells(t: ResultTable, r: ResultRow) -> list[str]:
    pen = fmt_hms(r.penalty_ms) if r.penalty_ms else ""
    raw = None if r.gun_ms is None or not r.penalty_ms else r.gun_ms - r.penalty_ms
    return [fmt_hms(raw), pen, _cell(r.penalties)]


def to_json(t: ResultTable) -> dict[str, Any]:
    """The table as JSON-ready data (times in ms and as text)."""
    return {
        "race": t.race,
        "race_name": t.race_name,
        "division": t.division,
        "checkpoints": [{"id": c, "name": n, "distance_m": d} for c, n, d in t.checkpoints],
        "results": [
            {
                "position": r.position,
                "bib": r.bib,
                "name": r.name,
                "gender": r.gender,
                "category": r.category,
                "club": r.club,
                "status": r.status,
                "gun_ms": r.gun_ms,
                "chip_ms": r.chip_ms,
                "gun_time": fmt_hms(r.gun_ms),
                "chip_time": fmt_hms(r.chip_ms),
                "overall_position": r.overall_position,
                "gender_position": r.gender_position,
                "category_position": r.category_position,
                "penalty_ms": r.penalty_ms,
                "penalty": fmt_hms(r.penalty_ms) if r.penalty_ms else "",
                "penalties": r.penalties,
                "raw_gun_ms": None if r.gun_ms is None else r.gun_ms - r.penalty_ms,
                "reason": r.reason,
                "meets_next_standard": r.next_standard,
                "splits": {c: s for (c, _, _), s in zip(t.checkpoints, r.splits, strict=True)},
            }
            for r in t.rows
        ],
    }


def history_from_csv(text: str, checkpoints: Sequence[str]) -> list[list[float | None]]:
    """Last year's results CSV as the predictor's ``history``: per runner, cumulative elapsed
    seconds at each of ``checkpoints`` (ids, in course order; None where missing). Runners
    with no split at all are left out; a checkpoint the CSV lacks is None for everyone."""
    out: list[list[float | None]] = []
    for row in csv.DictReader(io.StringIO(text)):
        values = [parse_hms(row.get(f"split_{cp}") or "") for cp in checkpoints]
        if any(v is not None for v in values):
            out.append(values)
    return out


def _fmt_duration(ms: int) -> str:
    """``0:16``, ``12:05``, ``1:02:03`` (whole seconds)."""
    s = round(ms / 1000)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def prediction_accuracy(state: RaceState, race_id: str) -> list[dict[str, Any]]:
    """How good today's finish predictions were, per checkpoint before the finish, over the
    finishers so far: the finish estimate made the moment each passed the checkpoint against
    their finish (mean absolute error), and how often the finish fell inside its 80% range.
    Checkpoints nobody who has finished was predicted from are left out. Derived from the
    log alone (:meth:`~livetrack.domain.forecast.Forecasts.accuracy`): every process shows
    the same figures."""
    race = state.event.races[race_id]
    names = {cp.id: cp.name for cp in race.course.checkpoints}
    rows = []
    for a in state.forecasts.accuracy(race_id):
        if not a.n:
            continue
        mae_ms = round(a.mae_s * 1000)
        rows.append(
            {
                "checkpoint": a.checkpoint,
                "name": names.get(a.checkpoint, a.checkpoint),
                "finishers": a.n,
                "mae_ms": mae_ms,
                "mae": _fmt_duration(mae_ms),
                "inside_80": a.inside,
                "inside_80_pct": round(100.0 * a.coverage, 1),
            }
        )
    return rows
