"""A series across events: the same race run in several places, scored by a points table.

The series file (TOML) names the events, each with its results (a results export of this
project, CSV or JSON, or an event log with its event file), and the points table. The
results of each event become :class:`Placing` rows; :func:`standings` scores them.

* **Points** by place (the overall place in that event's results, finishers only), from
  ``points.by_place``; a finisher placed beyond the table gets ``points.finisher`` (0 unless
  given). Only an athlete's best ``points.best`` results count (best N of the M events).
* **Identity** across events (bibs differ from event to event, so never the bib): the athlete
  id column when the results have one (``series.athlete_id`` names it, default
  ``athlete_id``), else the name normalised (case, accents, spaces and hyphens ignored) with
  the gender and, where the results give it, the birth year (see :func:`identity`).
* **Ties** on points: more wins, then the better best place, then the better place in the most
  recent event (then the one before, and so on; not running is behind any place). Athletes
  equal on all of it share the position.

Pure: text in, values out. Every error names the file and the line (:class:`SeriesError`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any


class SeriesError(ValueError):
    """Bad series input: ``str(err)`` is ``file: line N: what is wrong``."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = f"{file}: line {line}" if line else file
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass(frozen=True, slots=True)
class SeriesEvent:
    """One event of the series: ``results`` (a results CSV/JSON file) or ``log`` with
    ``event_file`` and ``race`` (an event log to fold); paths as written in the file."""

    name: str
    date: date
    line: int
    results: str = ""
    log: str = ""
    event_file: str = ""
    race: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    events: tuple[SeriesEvent, ...]  # by date, oldest first
    by_place: tuple[float, ...]
    best: int
    finisher: float = 0.0
    athlete_id: str = "athlete_id"
    #: Whether ``athlete_id`` was named in the file (its absence in results is then an error).
    declared_id: bool = False


@dataclass(frozen=True, slots=True)
class Placing:
    """One finisher's result in one event."""

    place: int
    name: str
    gender: str = ""
    club: str = ""
    athlete_id: str = ""
    birth_year: int | None = None


@dataclass(slots=True)
class Standing:
    key: str
    name: str
    gender: str
    club: str
    points: float = 0.0
    #: Per event (in series order): (place, points, counted) or None where not placed.
    results: list[tuple[int, float, bool] | None] = field(default_factory=list)
    position: int = 0

    @property
    def wins(self) -> int:
        return sum(1 for r in self.results if r is not None and r[0] == 1)

    @property
    def best_place(self) -> int | None:
        places = [r[0] for r in self.results if r is not None]
        return min(places) if places else None


# -- the series file -----------------------------------------------------------------------


def _line_of(text: str, pattern: str, nth: int = 0) -> int | None:
    """The 1-based line of the ``nth`` line matching ``pattern`` (a regex), if any."""
    found = [i for i, ln in enumerate(text.splitlines(), 1) if re.search(pattern, ln)]
    return found[nth] if nth < len(found) else None


def parse_series(text: str, file: str) -> Series:
    """The series in TOML ``text`` (read from ``file``, named in errors)."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise SeriesError(file, int(m.group(1)) if m else None, f"not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"series", "points", "event"})
    if unknown:
        raise SeriesError(
            file,
            _line_of(text, rf"^\s*\[*\s*{re.escape(unknown[0])}\b"),
            f"unknown table {unknown[0]!r} (expected [series], [points] and [[event]])",
        )
    head = data.get("series", {})
    if not isinstance(head, dict):
        raise SeriesError(file, _line_of(text, r"^\s*series\s*="), "series must be a table")
    _keys(head, {"name", "athlete_id"}, text, file, r"^\s*\[series\]")
    name = head.get("name", "Series")
    athlete_id = head.get("athlete_id", "athlete_id")
    for key, value in (("name", name), ("athlete_id", athlete_id)):
        if not isinstance(value, str) or not value.strip():
            raise SeriesError(file, _line_of(text, rf"^\s*{key}\s*="), f"{key} must be text")
    pts = data.get("points")
    if not isinstance(pts, dict):
        raise SeriesError(file, _line_of(text, r"^\s*\[points\]"), "a [points] table is required")
    _keys(pts, {"by_place", "best", "finisher"}, text, file, r"^\s*\[points\]")
    by_place = pts.get("by_place")
    line = _line_of(text, r"^\s*by_place\s*=") or _line_of(text, r"^\s*\[points\]")
    if (
        not isinstance(by_place, list)
        or not by_place
        or not all(_number(v) and v >= 0 for v in by_place)
    ):
        raise SeriesError(
            file, line, "points.by_place must be a non-empty list of points (1st place first)"
        )
    if any(b > a for a, b in itertools.pairwise(by_place)):
        raise SeriesError(file, line, "points.by_place must not give a lower place more points")
    finisher = pts.get("finisher", 0)
    if not _number(finisher) or finisher < 0 or finisher > by_place[-1]:
        raise SeriesError(
            file,
            _line_of(text, r"^\s*finisher\s*="),
            "points.finisher must be points from 0 to the table's last place",
        )
    raw_events = data.get("event")
    if not isinstance(raw_events, list) or not raw_events:
        raise SeriesError(file, None, "at least one [[event]] is required")
    events = [_event(e, i, text, file) for i, e in enumerate(raw_events)]
    best = pts.get("best", len(events))
    if isinstance(best, bool) or not isinstance(best, int) or not 1 <= best <= len(events):
        raise SeriesError(
            file,
            _line_of(text, r"^\s*best\s*="),
            f"points.best must be a whole number from 1 to {len(events)} (the events listed)",
        )
    seen: dict[str, int] = {}
    for e in events:
        if e.name in seen:
            raise SeriesError(file, e.line, f"a second event named {e.name!r}")
        seen[e.name] = e.line
    return Series(
        name=name.strip(),
        events=tuple(sorted(events, key=lambda e: e.date)),
        by_place=tuple(float(v) for v in by_place),
        best=best,
        finisher=float(finisher),
        athlete_id=athlete_id.strip(),
        declared_id="athlete_id" in head,
    )


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _keys(data: Mapping[str, Any], allowed: set[str], text: str, file: str, table: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        line = _line_of(text, rf"^\s*{re.escape(unknown[0])}\s*=") or _line_of(text, table)
        raise SeriesError(
            file,
            line,
            f"unknown key {unknown[0]!r} (expected one of: {', '.join(sorted(allowed))})",
        )


def _event(e: Any, i: int, text: str, file: str) -> SeriesEvent:
    line = _line_of(text, r"^\s*\[\[\s*event\s*\]\]", i)
    if not isinstance(e, dict):
        raise SeriesError(file, line, "each [[event]] must be a table")
    _keys(e, {"name", "date", "results", "log", "event", "race"}, text, file, r"\[\[\s*event")
    name = e.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SeriesError(file, line, "each [[event]] needs a name")
    day = e.get("date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            day = None
    if not isinstance(day, date):
        raise SeriesError(file, line, f"event {name!r}: date must be a date (YYYY-MM-DD)")
    results, log = e.get("results", ""), e.get("log", "")
    event_file, race = e.get("event", ""), e.get("race", "")
    for key, value in (("results", results), ("log", log), ("event", event_file), ("race", race)):
        if not isinstance(value, str):
            raise SeriesError(file, line, f"event {name!r}: {key} must be text")
    if bool(results) == bool(log):
        raise SeriesError(
            file, line, f"event {name!r}: give either results (a CSV/JSON export) or log"
        )
    if log and not event_file:
        raise SeriesError(file, line, f"event {name!r}: a log needs its event file (event = ...)")
    if results and not results.lower().endswith((".csv", ".json")):
        raise SeriesError(file, line, f"event {name!r}: results must be a .csv or .json export")
    return SeriesEvent(name.strip(), day, line or 0, results, log, event_file, race)


# -- results files -------------------------------------------------------------------------


def _place_of(row: Mapping[str, Any]) -> str:
    for key in ("overall_position", "position"):
        value = row.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def _placing(row: Mapping[str, Any], series: Series, file: str, line: int) -> Placing | None:
    status = str(row.get("status") or "finished")
    if status != "finished":
        return None
    place_text = _place_of(row)
    if not place_text:
        return None  # an unranked finisher (a fun run) scores nothing
    try:
        place = int(place_text)
    except ValueError:
        raise SeriesError(file, line, f"position {place_text!r} is not a whole number") from None
    if place < 1:
        raise SeriesError(file, line, f"position {place} is not a place")
    name = str(row.get("name") or "").strip()
    aid = str(row.get(series.athlete_id) or "").strip()
    if not name and not aid:
        raise SeriesError(file, line, "a finisher with neither a name nor an athlete id")
    year_text = str(row.get("birth_year") or "").strip()
    year = int(year_text) if year_text.isdigit() else None
    gender = str(row.get("gender") or "").strip().upper()
    return Placing(place, name, gender, str(row.get("club") or "").strip(), aid, year)


def placings_from_csv(text: str, series: Series, file: str) -> list[Placing]:
    """The finishers of a results CSV (this project's export, or any CSV with ``name`` and
    ``position`` or ``overall_position``; ``status``, ``gender``, ``club``, ``birth_year`` and
    the athlete id column when present)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if not columns:
        raise SeriesError(file, 1, "the file is empty (a header row is needed)")
    reader.fieldnames = columns
    needed = [c for c in ("name",) if c not in columns]
    if "position" not in columns and "overall_position" not in columns:
        needed.append("position")
    if series.declared_id and series.athlete_id not in columns:
        needed.append(series.athlete_id)
    if needed:
        raise SeriesError(
            file,
            1,
            f"no column {', '.join(repr(n) for n in needed)} (columns: {', '.join(columns)})",
        )
    out = []
    for row in reader:
        found = _placing(row, series, file, reader.line_num)
        if found is not None:
            out.append(found)
    return out


def placings_from_json(text: str, series: Series, file: str) -> list[Placing]:
    """The finishers of a results JSON export (``{"results": [...]}``, rows as in the CSV)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeriesError(file, exc.lineno, f"not valid JSON: {exc.msg}") from None
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SeriesError(file, 1, 'not a results export: no "results" list of objects')
    out = []
    for i, row in enumerate(rows):
        if "name" not in row or ("position" not in row and "overall_position" not in row):
            raise SeriesError(file, None, f"results[{i}]: needs name and position")
        if series.declared_id and series.athlete_id not in row:
            raise SeriesError(file, None, f"results[{i}]: no {series.athlete_id!r}")
        found = _placing(row, series, file, 0)
        if found is not None:
            out.append(found)
    return out


# -- scoring -------------------------------------------------------------------------------


def normalise(name: str) -> str:
    """A name as compared across events: accents, case, punctuation and spacing ignored."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    plain = re.sub(r"['’`]", "", plain)  # O'Neil and ONeil are one name
    return " ".join(re.sub(r"[^\w]+", " ", plain).split())


def identity(p: Placing) -> str:
    """The key an athlete is matched on across events (see the module's docstring)."""
    if p.athlete_id:
        return f"id:{p.athlete_id}"
    key = f"name:{normalise(p.name)}|{p.gender}"
    return f"{key}|{p.birth_year}" if p.birth_year else key


def points_for(series: Series, place: int) -> float:
    if place <= len(series.by_place):
        return series.by_place[place - 1]
    return series.finisher


def standings(series: Series, results: Sequence[Sequence[Placing]]) -> list[Standing]:
    """The series table: ``results[i]`` are the finishers of ``series.events[i]``."""
    if len(results) != len(series.events):
        raise ValueError("one list of placings per event of the series")
    table: dict[str, Standing] = {}
    m = len(series.events)
    for i, placings in enumerate(results):
        for p in placings:
            key = identity(p)
            s = table.get(key)
            if s is None:
                s = table[key] = Standing(key, p.name, p.gender, p.club, results=[None] * m)
            prior = s.results[i]
            if prior is None or p.place < prior[0]:  # listed twice: the better place counts
                s.results[i] = (p.place, points_for(series, p.place), False)
            s.name, s.club = p.name or s.name, p.club or s.club  # the latest spelling
    for athlete in table.values():
        done = [(r[1], i) for i, r in enumerate(athlete.results) if r is not None]
        # the best N by points (of equal points, the more recent result)
        for _, i in sorted(done, reverse=True)[: series.best]:
            place, pts, _ = athlete.results[i] or (0, 0.0, False)
            athlete.results[i] = (place, pts, True)
            athlete.points += pts
    ordered = sorted(table.values(), key=_rank_key)
    for n, s in enumerate(ordered):
        before = ordered[n - 1] if n else None
        same = before is not None and _rank_key(before)[:-1] == _rank_key(s)[:-1]
        s.position = before.position if same and before is not None else n + 1
    return ordered


def _rank_key(s: Standing) -> tuple[Any, ...]:
    best = s.best_place if s.best_place is not None else 1 << 30
    recent = tuple(r[0] if r is not None else 1 << 30 for r in reversed(s.results))
    return (-s.points, -s.wins, best, recent, s.name.casefold())
