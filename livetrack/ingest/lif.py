"""FinishLynx ``.lif`` result files (and the timer's hand-timed lines), sans I/O.

A ``.lif`` file is comma-separated text, one file per heat. Its first line is the heat:

    event number, round number, heat number, event name, wind, wind unit, …, distance, start time

and every other line one athlete:

    place, id (bib), lane, last name, first name, affiliation, time, license, delta time,
    reaction time, splits…

``place`` is a number, or ``DNS``/``DNF``/``DQ`` (``DSQ`` is read as ``DQ``, ``SCR`` as
``DNS``); ``time`` is ``12.34``, ``12.345`` or ``1:02.34`` (the camera resolves thousandths;
results show hundredths rounded up); a reaction time is seconds (``0.145``).

:func:`parse_lif` reads what it can and lists every line it could not use, with the file's
name and the line's number; it never raises on bad content. :func:`parse_hand` reads the
lines the timer types for a hand-timed heat: ``place, bib, time[, lane]``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from livetrack.domain.durations import parse_hms

#: The most lines one file may hold (a heat has a dozen; anything far beyond is not a heat).
MAX_LINES = 200
_STATUS = {"DNS": "DNS", "SCR": "DNS", "DNF": "DNF", "DQ": "DQ", "DSQ": "DQ"}


@dataclass(frozen=True, slots=True)
class Problem:
    """A line of a file that was not used, and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Header:
    event: int
    round: int
    heat: int
    name: str = ""
    wind: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    """One athlete's line."""

    line: int
    bib: str
    lane: int | None
    place: int | None
    status: str
    time_ms: int | None
    reaction_ms: int | None = None
    name: str = ""


@dataclass
class ResultFile:
    name: str
    header: Header | None = None
    lines: list[Line] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def decode_file(body: bytes) -> str | None:
    """A result file's text: UTF-8, else Windows' Latin-1 (what a Lynx PC writes); None for
    bytes that are not text at all."""
    if b"\x00" in body:
        return None
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def track_time(text: str) -> int:
    """``12.34`` / ``1:02.345`` as ms; ValueError saying what is wrong."""
    t = text.strip()
    if not t or not t[0].isdigit():
        raise ValueError(f"{text!r} is not a time like 12.34 or 1:02.34")
    ms = round(parse_hms(t) * 1000)
    if ms <= 0:
        raise ValueError("a time of 0 is not a result")
    if ms > 3_600_000:
        raise ValueError(f"{text!r} is over an hour: not a track time")
    return ms


def _line(
    number: int, place_s: str, bib: str, lane_s: str, time_s: str, reaction_s: str, name: str
) -> Line:
    """One athlete from its fields; ValueError saying what is wrong."""
    place_s = place_s.strip().upper()
    bib = bib.strip()
    if not bib or len(bib) > 20 or any(c.isspace() for c in bib):
        raise ValueError(f"{bib!r} is not a bib")
    lane: int | None = None
    if lane_s.strip():
        lane = _int(lane_s)
        if lane is None or not 1 <= lane <= 12:
            raise ValueError(f"lane {lane_s.strip()!r} is not a lane from 1 to 12")
    reaction: int | None = None
    if reaction_s.strip():
        try:
            value = float(reaction_s.strip())
        except ValueError:
            raise ValueError(f"reaction time {reaction_s.strip()!r} is not seconds") from None
        if not 0 <= value < 10:
            raise ValueError(f"reaction time {reaction_s.strip()!r} is not seconds")
        reaction = round(value * 1000)
    if place_s in _STATUS:
        return Line(number, bib, lane, None, _STATUS[place_s], None, reaction, name)
    place = _int(place_s)
    if place is None or place < 1:
        raise ValueError(f"place {place_s!r} is not a place (1, 2, … or DNS, DNF, DQ)")
    if not time_s.strip():
        raise ValueError(f"bib {bib} has a place but no time")
    return Line(number, bib, lane, place, "ok", track_time(time_s), reaction, name)


def _rows(text: str, name: str, out: ResultFile) -> list[tuple[int, list[str]]]:
    rows = []
    for number, raw in enumerate(io.StringIO(text), start=1):
        if number > MAX_LINES:
            out.problems.append(Problem(name, number, f"more than {MAX_LINES} lines: the rest"
                                        " was not read"))  # fmt: skip
            break
        if not raw.strip():
            continue
        if any(ord(c) < 32 and c not in "\t\r\n" for c in raw):
            out.problems.append(Problem(name, number, "control characters: not a result line"))
            continue
        fields = next(csv.reader([raw.rstrip("\r\n")]), [])
        rows.append((number, fields))
    return rows


def _unique(out: ResultFile, line: Line) -> bool:
    """Whether ``line`` names a bib and a lane no earlier line of ``out`` took."""
    for other in out.lines:
        if other.bib == line.bib:
            out.problems.append(
                Problem(out.name, line.line, f"bib {line.bib} is on line {other.line} already")
            )
            return False
        if line.lane is not None and other.lane == line.lane:
            out.problems.append(Problem(out.name, line.line,
                f"two athletes in lane {line.lane}: bib {other.bib} (line {other.line}) and "
                f"bib {line.bib}"))  # fmt: skip
            return False
    return True


def parse_lif(text: str, name: str) -> ResultFile:
    """A ``.lif`` file's heat and athletes, and the lines it could not use."""
    out = ResultFile(name)
    rows = _rows(text, name, out)
    if not rows:
        out.problems.append(Problem(name, 1, "the file is empty"))
        return out
    number, head = rows[0]
    numbers = [_int(f) for f in head[:3]]
    if len(head) < 3 or any(n is None for n in numbers):
        out.problems.append(Problem(name, number, "the first line is not a heat header "
                                    "(event, round, heat, event name, wind, …)"))  # fmt: skip
        return out
    event, rnd, heat = (n or 0 for n in numbers)
    wind = head[4].strip() if len(head) > 4 else ""
    unit = head[5].strip() if len(head) > 5 else ""
    out.header = Header(
        event, rnd, heat, head[3].strip() if len(head) > 3 else "",
        f"{wind} {unit}".strip() if wind else "",
    )  # fmt: skip
    for number, f in rows[1:]:
        if len(f) < 2:
            out.problems.append(Problem(name, number, "malformed line: fewer than 2 fields"))
            continue
        status_only = f[0].strip().upper() in _STATUS
        if len(f) < 7 and not status_only:
            out.problems.append(Problem(name, number, "malformed line: fewer than 7 fields"))
            continue
        f = f + [""] * (10 - len(f))
        full = " ".join(p for p in (f[4].strip(), f[3].strip()) if p)
        try:
            line = _line(number, f[0], f[1], f[2], f[6], f[9], full)
        except ValueError as exc:
            out.problems.append(Problem(name, number, str(exc)))
            continue
        if _unique(out, line):
            out.lines.append(line)
    if not out.lines and not out.problems:
        out.problems.append(Problem(name, 1, "the file has a header but no athletes"))
    return out


def parse_hand(text: str, name: str = "hand-timed") -> ResultFile:
    """The timer's hand-timed lines: ``place, bib, time[, lane]`` (commas or spaces), e.g.
    ``1, 101, 12.4`` or ``DNF 104``."""
    out = ResultFile(name)
    for number, f in _rows(text, name, out):
        if len(f) == 1:
            f = f[0].split()
        f = [p.strip() for p in f]
        if len(f) < 2:
            out.problems.append(Problem(name, number, "expected place, bib, time[, lane]"))
            continue
        f = f + [""] * (4 - len(f))
        try:
            line = _line(number, f[0], f[1], f[3], f[2], "", "")
        except ValueError as exc:
            out.problems.append(Problem(name, number, str(exc)))
            continue
        if _unique(out, line):
            out.lines.append(line)
    if not out.lines and not out.problems:
        out.problems.append(Problem(name, 1, "no results"))
    return out
