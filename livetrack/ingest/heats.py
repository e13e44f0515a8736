"""A heat's result file checked against the draw: what becomes one
:class:`~livetrack.domain.meet_records.HeatResult` record, and what is reported.

A file for a heat nobody knows (no race with that photo-finish event number, no such round,
a round not drawn yet, no such heat) imports nothing. Otherwise every line whose athlete is
in that heat goes into one record (all of it or nothing: one record is one append), and each
other line is reported with the file and the line number.

A result whose content is already the heat's current result is that very record again (a
duplicate for the log). With ``reassert`` (an upload, hand times, or a watched file that
changed while it was watched) a result whose content the log held earlier, but which has
since been replaced, names the result it replaces, so it is stored and counts again; without
it (a file seen for the first time, as after a restart) such a file is a duplicate, so a
restart never undoes a correction made since.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from livetrack.domain.meet_records import HeatResult, Row
from livetrack.domain.model import Race
from livetrack.domain.rounds import Round
from livetrack.domain.state import RaceState
from livetrack.ingest.lif import Line, Problem, ResultFile, parse_hand, parse_lif


@dataclass
class Import:
    """What a file gives: the record to append (None when nothing could be imported) and
    every problem, each naming the file and line."""

    file: str
    record: HeatResult | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [str(p) for p in self.problems]


def find_heat(state: RaceState, event_no: int, round_no: int) -> tuple[Race, Round] | str:
    """The race and round a photo-finish file's header names, or why there is none."""
    races = [r for r in state.event.races.values() if r.rounds and r.rounds.lynx_event == event_no]
    if not races:
        return f"no race here has photo-finish event number {event_no}"
    race = races[0]
    assert race.rounds is not None
    rnd = race.rounds.by_number(round_no)
    if rnd is None:
        return f"{race.name} has no round {round_no}"
    return race, rnd


def _record(
    state: RaceState, race: Race, rnd: Round, heat: int, parsed: ResultFile, source: str,
    wind: str, by: str, at_ms: int, first_line: int, reassert: bool = False,
) -> Import:  # fmt: skip
    out = Import(parsed.name, problems=list(parsed.problems))
    rr = state.meet.get(race.id)
    drawn = rr.state(rnd.id).draw if rr is not None else None
    if drawn is None:
        out.problems.insert(0, Problem(parsed.name, first_line,
                            f"{rnd.name} of {race.name} is not drawn yet"))  # fmt: skip
        return out
    if not 1 <= heat <= drawn.heats:
        out.problems.insert(0, Problem(parsed.name, first_line,
                            f"unknown heat: {rnd.name} of {race.name} has "
                            f"{drawn.heats} heat(s), not heat {heat}"))  # fmt: skip
        return out
    seated = dict(drawn.heat(heat))
    rows: list[Row] = []
    kept: list[Line] = []
    for ln in parsed.lines:
        if ln.bib not in seated:
            where = drawn.where(ln.bib)
            why = f"bib {ln.bib} is not in heat {heat} of {rnd.name}"
            if where is not None:
                why += f" (drawn in heat {where[0]})"
            out.problems.append(Problem(parsed.name, ln.line, why))
            continue
        kept.append(ln)
    kept.sort(key=lambda ln: ln.line)
    out.problems.sort(key=lambda p: p.line)
    for ln in kept:
        rows.append((ln.bib, ln.lane or seated[ln.bib], ln.place, ln.status, ln.time_ms,
                     ln.reaction_ms))  # fmt: skip
    if rows:
        notes = tuple(str(p) for p in out.problems)
        record = HeatResult(race.id, rnd.id, heat, tuple(rows), source, wind, by, at_ms, notes)
        current = rr.results.get((rnd.id, heat)) if rr is not None else None
        if current is not None and current.content == record.content:
            record = replace(record, after=current.after)  # the same result: a duplicate
        elif current is not None and reassert:
            record = replace(record, after=current.key)
        out.record = record
    return out


def import_lif(
    state: RaceState, text: str, name: str, by: str = "", at_ms: int = 0, *, reassert: bool = True
) -> Import:
    """A ``.lif`` file named ``name`` checked against ``state`` (see the module doc)."""
    parsed = parse_lif(text, name)
    if parsed.header is None:
        return Import(name, problems=parsed.problems)
    found = find_heat(state, parsed.header.event, parsed.header.round)
    if isinstance(found, str):
        return Import(name, problems=[Problem(name, 1, f"unknown heat: {found}")])
    race, rnd = found
    return _record(state, race, rnd, parsed.header.heat, parsed, f"lif:{name}",
                   parsed.header.wind, by, at_ms, 1, reassert)  # fmt: skip


def import_hand(
    state: RaceState, race_id: str, round_id: str, heat: int, text: str, by: str = "",
    at_ms: int = 0,
) -> Import:  # fmt: skip
    """The timer's hand-timed lines for one heat (see :func:`~livetrack.ingest.lif.parse_hand`)."""
    name = "hand-timed"
    race = state.event.races.get(race_id)
    rnd = race.rounds.round(round_id) if race is not None and race.rounds else None
    if race is None or rnd is None:
        return Import(name, problems=[Problem(name, 1, f"no round {round_id!r} of {race_id!r}")])
    parsed = parse_hand(text, name)
    return _record(state, race, rnd, heat, parsed, "hand", "", by, at_ms, 1, True)
