"""Qualifying standards: the times a race asks of its entrants, by gender and category.

In the event file, a race's ``standards`` table holds two tables of times, each keyed by a
category (``FV40``), a gender (``F``, ``M``, ``X``) or ``all``::

    [race.standards]
    qualifying = { F = "9:30", M = "8:30", MV50 = "9:45" }   # to enter this year
    next = { F = "9:20", M = "8:20" }                         # marks results: next year's

A runner's standard is the one for their category, else their gender, else ``all`` (none
when no key applies). An entry's qualifying performance is the participants CSV's
``entry_time`` column (aliases ``qualifying``, ``qualifying_time``, ``seed_time``, ``pb``;
:attr:`~livetrack.domain.records.ParticipantRecord.entry_ms`); it meets a standard when it is
not slower. :func:`check_entries` lists the entries below their standard for ``livetrack
check-event``; results mark finishes that meet ``next`` (:func:`meets_next`). A championship
with ``standard = true`` admits only entrants whose qualifying performance meets their
standard (see :func:`eligible`). Pure: no I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livetrack.domain.durations import parse_hms
from livetrack.domain.model import ConfigError

if TYPE_CHECKING:
    from livetrack.domain.model import Race
    from livetrack.domain.records import ParticipantRecord


@dataclass(frozen=True, slots=True)
class Standards:
    """Times in seconds by key (category, gender or ``all``): to qualify, and next year's."""

    qualifying: tuple[tuple[str, float], ...] = ()
    next: tuple[tuple[str, float], ...] = ()

    def qualifying_for(self, gender: str, category: str) -> tuple[str, float] | None:
        return _lookup(self.qualifying, gender, category)

    def next_for(self, gender: str, category: str) -> tuple[str, float] | None:
        return _lookup(self.next, gender, category)


def _lookup(
    table: tuple[tuple[str, float], ...], gender: str, category: str
) -> tuple[str, float] | None:
    """(key, seconds) for a runner: their category's, else their gender's, else ``all``."""
    found = dict(table)
    for key in (category, gender, "all"):
        if key and key in found:
            return key, found[key]
    return None


def _times(value: Any, path: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, dict) or not value:
        raise ConfigError(path, 'must be a table of times, e.g. { F = "9:30", M = "8:30" }')
    out = []
    for key, text in value.items():
        where = f"{path}.{key}"
        if not key.strip() or len(key) > 20:
            raise ConfigError(where, "a gender (F, M, X), a category (FV40) or 'all'")
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise ConfigError(where, "must be a time like '9:30' or seconds")
        try:
            seconds = parse_hms(text) if isinstance(text, str) else float(text)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
        if seconds <= 0:
            raise ConfigError(where, "must be a time above zero")
        out.append((key.strip(), seconds))
    return tuple(out)


def parse_standards(value: Any, path: str) -> Standards:
    """A race's ``standards`` table: ``qualifying`` and/or ``next``."""
    if not isinstance(value, dict):
        raise ConfigError(path, 'must be a table (e.g. { qualifying = { F = "9:30" } })')
    unknown = sorted(set(value) - {"qualifying", "next"})
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", "unknown key (expected qualifying, next)")
    if not value:
        raise ConfigError(path, "give qualifying and/or next standards")
    qualifying = _times(value["qualifying"], f"{path}.qualifying") if "qualifying" in value else ()
    return Standards(qualifying, _times(value["next"], f"{path}.next") if "next" in value else ())


# -- what follows from them ----------------------------------------------------------------


def fmt_time(ms: int) -> str:
    """``9:30.00`` or ``12.34`` (hundredths: qualifying times are often track times)."""
    seconds, hundredths = divmod(round(ms / 10), 100)
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}.{hundredths:02d}"
    return f"{m}:{s:02d}.{hundredths:02d}" if m else f"{s}.{hundredths:02d}"


def meets_qualifying(race: Race, gender: str, category: str, entry_ms: int | None) -> bool | None:
    """Whether an entry's qualifying performance meets its standard; None when the race has
    no qualifying standard for the runner (or the entry gave no performance)."""
    found = race.standards.qualifying_for(gender, category) if race.standards else None
    if found is None or entry_ms is None:
        return None
    return entry_ms <= round(found[1] * 1000)


def meets_next(race: Race, gender: str, category: str, final_ms: int | None) -> bool:
    """Whether a finish time (penalties included) meets next year's standard for the runner."""
    found = race.standards.next_for(gender, category) if race.standards else None
    return found is not None and final_ms is not None and final_ms <= round(found[1] * 1000)


def eligible(race: Race, gender: str, category: str, entry_ms: int | None) -> bool:
    """The championship's standard rule: with ``standard = true`` an entrant is eligible only
    with a qualifying performance that meets the standard for their gender and category (an
    entrant with no standard that applies to them is eligible; one who gave no performance is
    not). Without it, everyone is (the nationality and club rules apply either way)."""
    rule = race.championship
    if rule is None or not rule.standard:
        return True
    found = race.standards.qualifying_for(gender, category) if race.standards else None
    if found is None:
        return True
    return entry_ms is not None and entry_ms <= round(found[1] * 1000)


@dataclass(frozen=True, slots=True)
class BelowStandard:
    """An entry whose qualifying performance is slower than its standard."""

    line: int
    bib: str
    race: str
    key: str
    standard_ms: int
    entry_ms: int

    def __str__(self) -> str:
        over = self.entry_ms - self.standard_ms
        return (
            f"line {self.line}: bib {self.bib} ({self.race}): qualifying time "
            f"{fmt_time(self.entry_ms)} is {fmt_time(over)} slower than the {self.key} "
            f"standard {fmt_time(self.standard_ms)}"
        )


def csv_lines(text: str) -> dict[str, int]:
    """The line of the participants CSV ``text`` each bib is on (its first row)."""
    reader = csv.DictReader(io.StringIO(text))
    bib_column = next(
        (c for c in reader.fieldnames or [] if c.strip().lower() in ("bib", "number")), None
    )
    lines: dict[str, int] = {}
    if bib_column is None:
        return lines
    for row in reader:
        bib = (row.get(bib_column) or "").strip()
        if bib:
            lines.setdefault(bib, reader.line_num)
    return lines


def check_entries(
    races: Mapping[str, Race], people: Iterable[ParticipantRecord], lines: Mapping[str, int]
) -> tuple[list[BelowStandard], int]:
    """The entries below their qualifying standard (in file order), and how many entries of
    races with qualifying standards gave no performance. ``category`` is the category the
    runner will be in (the CSV's, else the one their age gives)."""
    from livetrack.domain.participants import category

    below: list[BelowStandard] = []
    missing = 0
    for p in people:
        race = races.get(p.race)
        if race is None or race.standards is None or not race.standards.qualifying:
            continue
        cat = p.category or category(p.gender, p.age, race.categories)
        found = race.standards.qualifying_for(p.gender, cat)
        if found is None:
            continue
        if p.entry_ms is None:
            missing += 1
            continue
        standard_ms = round(found[1] * 1000)
        if p.entry_ms > standard_ms:
            line = lines.get(p.bib, 0)
            below.append(BelowStandard(line, p.bib, p.race, found[0], standard_ms, p.entry_ms))
    below.sort(key=lambda b: b.line)
    return below, missing
