"""Participants from CSV, and their categories.

A bad row is reported by row number and field; the good rows are kept. Bibs stay strings.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date

from livetrack.domain.durations import parse_hms
from livetrack.domain.event import UK_MASTERS, Categories, Event
from livetrack.domain.records import ParticipantRecord

_ALIASES = {
    "bib": "bib",
    "number": "bib",
    "chip": "chips",
    "chips": "chips",
    "first_name": "first_name",
    "firstname": "first_name",
    "first": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "last": "last_name",
    "gender": "gender",
    "sex": "gender",
    "dob": "dob",
    "date_of_birth": "dob",
    "birth_date": "dob",
    "age": "age",
    "club": "club",
    "team": "team",
    "race": "race",
    "wave": "wave",
    "charity": "charity",
    "pledged": "pledged",
    "pledge": "pledged",
    "hide_name": "hide_name",
    "category": "category",
    "nationality": "nationality",
    "nation": "nationality",
    "country": "nationality",
    "leg": "leg",
    "entry_time": "entry_time",
    "seed_time": "entry_time",
    "qualifying": "entry_time",
    "qualifying_time": "entry_time",
    "pb": "entry_time",
}
_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}
_GENDERS = {"m": "M", "male": "M", "f": "F", "female": "F", "w": "F", "x": "X", "nb": "X"}


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


def parse_participants(text: str, event: Event) -> tuple[list[ParticipantRecord], list[RowError]]:
    """Parse participants CSV ``text`` (header row first; row numbers count the header as 1)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return [], [RowError(1, "header", "the file is empty")]
    columns: dict[str, str] = {}
    for name in reader.fieldnames:
        norm = name.strip().lower().replace(" ", "_").replace("-", "_")
        if norm in _ALIASES:
            columns[name] = _ALIASES[norm]
    missing = {"bib", "race"} - set(columns.values())
    if missing and not ({"bib"} <= set(columns.values()) and len(event.races) == 1):
        return [], [RowError(1, "header", f"missing column(s): {', '.join(sorted(missing))}")]
    default_race = next(iter(event.races)) if len(event.races) == 1 else ""
    out: list[ParticipantRecord] = []
    errors: list[RowError] = []
    seen_bibs: dict[str, int] = {}
    seen_chips: dict[str, int] = {}
    legs: dict[str, list[tuple[int, ParticipantRecord, int]]] = {}
    for rownum, raw in enumerate(reader, start=2):
        row = {columns[k]: (v or "").strip() for k, v in raw.items() if k in columns}
        if not any(row.values()):
            continue
        try:
            rec = _row(row, rownum, event, default_race)
            leg = _leg(row, rec, event)
        except _Bad as bad:
            errors.append(RowError(rownum, bad.field, bad.message))
            continue
        if leg is not None:
            clash = next((c for c in rec.chips if c in seen_chips), None)
            team_rows = legs.setdefault(rec.bib, [])
            if clash is not None:
                msg = f"chip {clash!r} already used on row {seen_chips[clash]}"
                errors.append(RowError(rownum, "chips", msg))
            elif rec.bib in seen_bibs:
                msg = f"bib {rec.bib!r} already used on row {seen_bibs[rec.bib]}"
                errors.append(RowError(rownum, "bib", msg))
            elif any(n == leg for n, _, _ in team_rows):
                errors.append(RowError(rownum, "leg", f"team {rec.bib!r} has leg {leg} twice"))
            else:
                team_rows.append((leg, rec, rownum))
                for c in rec.chips:
                    seen_chips[c] = rownum
            continue
        if rec.bib in seen_bibs or rec.bib in legs:
            errors.append(
                RowError(rownum, "bib", f"bib {rec.bib!r} already used on row {seen_bibs[rec.bib]}")
            )
            continue
        clash = next((c for c in rec.chips if c in seen_chips), None)
        if clash is not None:
            errors.append(
                RowError(rownum, "chips", f"chip {clash!r} already used on row {seen_chips[clash]}")
            )
            continue
        seen_bibs[rec.bib] = rownum
        for c in rec.chips:
            seen_chips[c] = rownum
        out.append(rec)
    for team_rows in legs.values():
        team, error = _relay_team(team_rows, event)
        if error is not None:
            errors.append(error)
        else:
            assert team is not None
            out.append(team)
    return out, errors


def _leg(row: dict[str, str], rec: ParticipantRecord, event: Event) -> int | None:
    """The leg number of a relay row (None for an ordinary row)."""
    text = row.get("leg", "")
    race = event.races[rec.race]
    if not text:
        if race.kind == "relay":
            raise _Bad("leg", f"race {race.id!r} is a relay: each row is one leg (1, 2, …)")
        return None
    if race.kind != "relay":
        raise _Bad("leg", f"race {race.id!r} is not a relay")
    try:
        leg = int(text)
    except ValueError:
        raise _Bad("leg", f"{text!r} is not a leg number") from None
    count = len(race.handovers) + 1
    if not 1 <= leg <= count:
        raise _Bad("leg", f"race {race.id!r} has legs 1 to {count}, not {leg}")
    if len(rec.chips) != 1:
        raise _Bad("chips", "a relay leg has exactly one chip")
    return leg


def _relay_team(
    rows: list[tuple[int, ParticipantRecord, int]], event: Event
) -> tuple[ParticipantRecord | None, RowError | None]:
    """One participant for a relay team from its leg rows: the team's bib, every leg's chip
    in leg order, and the leg runners' names in :attr:`ParticipantRecord.legs`."""
    rows = sorted(rows)
    first = rows[0][1]
    race = event.races[first.race]
    count = len(race.handovers) + 1
    have = [n for n, _, _ in rows]
    if have != list(range(1, count + 1)):
        missing = next(n for n in range(1, count + 1) if n not in have)
        return None, RowError(rows[0][2], "leg", f"team {first.bib!r} has no leg {missing}")
    if any(r.race != first.race for _, r, _ in rows):
        return None, RowError(rows[0][2], "race", f"team {first.bib!r} spans races")
    genders = {r.gender for _, r, _ in rows}
    cat = {"F": "Women", "M": "Men"}.get(genders.pop(), "") if len(genders) == 1 else "Mixed"
    clubs = {r.club for _, r, _ in rows}
    name = next((r.team for _, r, _ in rows if r.team), f"Team {first.bib}")
    team = ParticipantRecord(
        bib=first.bib,
        race=first.race,
        first_name=name,
        chips=tuple(r.chips[0] for _, r, _ in rows),
        club=clubs.pop() if len(clubs) == 1 else "",
        team=name,
        wave=first.wave,
        category=cat if "" not in {r.gender for _, r, _ in rows} else "",
        legs=tuple(display_name(r) for _, r, _ in rows),
    )
    return team, None


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message


def _row(row: dict[str, str], rownum: int, event: Event, default_race: str) -> ParticipantRecord:
    bib = row.get("bib", "")
    if not bib:
        raise _Bad("bib", "is empty")
    if len(bib) > 20 or any(c.isspace() for c in bib):
        raise _Bad("bib", f"{bib!r} is not a bib (no spaces, at most 20 characters)")
    race = row.get("race", "") or default_race
    if race not in event.races:
        raise _Bad("race", f"unknown race {race!r} (expected one of {', '.join(event.races)})")
    wave = row.get("wave", "")
    if wave and wave not in {w.id for w in event.races[race].waves}:
        raise _Bad("wave", f"unknown wave {wave!r} in race {race!r}")
    chips_text = row.get("chips", "")
    chips = tuple(c.strip() for c in chips_text.replace(";", " ").replace("|", " ").split())
    gender_raw = row.get("gender", "").lower()
    if gender_raw and gender_raw not in _GENDERS:
        raise _Bad("gender", f"{row['gender']!r} is not M, F or X")
    gender = _GENDERS.get(gender_raw, "")
    birth_year: int | None = None
    age: int | None = None
    if row.get("dob"):
        try:
            dob = date.fromisoformat(row["dob"])
        except ValueError:
            raise _Bad("dob", f"{row['dob']!r} is not a date (YYYY-MM-DD)") from None
        d = event.date
        age = d.year - dob.year - ((d.month, d.day) < (dob.month, dob.day))
        birth_year = dob.year
        if not 0 < age < 120:
            raise _Bad("dob", f"{row['dob']!r} gives an impossible age {age}")
    elif row.get("age"):
        try:
            age = int(row["age"])
        except ValueError:
            raise _Bad("age", f"{row['age']!r} is not a whole number") from None
        if not 0 < age < 120:
            raise _Bad("age", f"{age} is not a plausible age")
    pledged = 0.0
    if row.get("pledged"):
        try:
            pledged = float(row["pledged"].replace("£", "").replace(",", ""))
        except ValueError:
            raise _Bad("pledged", f"{row['pledged']!r} is not an amount") from None
        if not math.isfinite(pledged):
            raise _Bad("pledged", f"{row['pledged']!r} is not an amount")
        if pledged < 0:
            raise _Bad("pledged", "must not be negative")
    hide_raw = row.get("hide_name", "").lower()
    if hide_raw not in _TRUE | _FALSE:
        raise _Bad("hide_name", f"{row['hide_name']!r} is not yes/no")
    nationality = row.get("nationality", "").upper()
    if nationality and not (nationality.isalpha() and 2 <= len(nationality) <= 3):
        raise _Bad("nationality", f"{row['nationality']!r} is not a country code like GBR")
    for name in ("first_name", "last_name", "club", "team", "charity"):
        if len(row.get(name, "")) > 100:
            raise _Bad(name, "is longer than 100 characters")
    entry_ms: int | None = None
    if row.get("entry_time"):
        try:
            entry_ms = round(parse_hms(row["entry_time"]) * 1000)
        except ValueError:
            raise _Bad("entry_time", f"{row['entry_time']!r} is not a time like 12.34") from None
        if entry_ms <= 0:
            raise _Bad("entry_time", "must be more than 0")
    return ParticipantRecord(
        bib=bib,
        race=race,
        first_name=row.get("first_name", ""),
        last_name=row.get("last_name", ""),
        chips=chips or (bib,),
        gender=gender,
        birth_year=birth_year,
        age=age,
        club=row.get("club", ""),
        team=row.get("team", ""),
        wave=wave,
        charity=row.get("charity", ""),
        pledged=pledged,
        hide_name=hide_raw in _TRUE,
        category=row.get("category", ""),
        nationality=nationality,
        entry_ms=entry_ms,
    )


def category(gender: str, age: int | None, scheme: Categories = UK_MASTERS) -> str:
    """The age category: ``MU20`` (junior), ``FSEN`` (senior), then ``MV35``, ``FV40`` … from
    each band's age; UK masters bands unless the event or race configures its own."""
    if not scheme.enabled or not gender or age is None:
        return ""
    if scheme.junior_under is not None and age < scheme.junior_under:
        return f"{gender}U{scheme.junior_under}"
    band = 0
    for b in scheme.bands:
        if age >= b:
            band = b
    return f"{gender}SEN" if band == 0 else f"{gender}V{band}"


def display_name(p: ParticipantRecord) -> str:
    """The public name: ``Runner <bib>`` when the participant asked to hide theirs."""
    if p.hide_name:
        return f"Runner {p.bib}"
    name = f"{p.first_name} {p.last_name}".strip()
    return name or f"Runner {p.bib}"
