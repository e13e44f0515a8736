"""The fold's part for races run in rounds: draws, heat results, adjustments, qualifiers.

:class:`Meet` keeps, per race with ``rounds``, what the log said (the draw records, the latest
result of each heat, the adjustments in log order) and re-derives from it, after each such
record, every round's draw, marks and qualifiers (:meth:`RaceRounds.refresh`): a few dozen
athletes, so a whole re-derivation is cheap and leaves nothing half-updated.

The rules (see :mod:`livetrack.domain.rounds` for seeding, lanes and ties):

* The first round is drawn by a :class:`~livetrack.domain.meet_records.DrawRound` record,
  from the race's entries at that point of the log (not DNS), ranked by entry time.
* A later round is drawn as soon as the round before it is complete (every heat has a
  result), from its qualifiers, with a seed derived from the first draw's. It is drawn again
  when a result of the round before changes, until a result of its own arrives: from then on
  its draw stands. A ``DrawRound`` for a later round draws it again with a new seed (until
  it has a result).
* Adjustments (scratch, add, lot) apply on top of the draw in log order; ``undo`` takes one
  back.
* A heat result names athletes by bib; a row for a bib not in that heat is left out and
  listed as a problem of the fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livetrack.domain.meet_records import DrawRound, HeatResult, RoundAdjust
from livetrack.domain.model import Event
from livetrack.domain.rounds import (
    Draw,
    DrawError,
    Mark,
    Qualified,
    Rounds,
    draw,
    entry_order,
    qualify,
    round_seed,
)

MeetRecord = DrawRound | HeatResult | RoundAdjust


@dataclass
class RoundState:
    """What one round holds now (derived)."""

    draw: Draw | None = None
    #: Results by bib (rows whose bib is in the heat's draw).
    marks: dict[str, Mark] = field(default_factory=dict)
    #: Heat number -> its result record's source and wind.
    heats_in: dict[int, HeatResult] = field(default_factory=dict)
    qualified: Qualified | None = None
    #: Why the round could not be drawn (None when it is drawn or simply not due yet).
    trouble: str = ""

    @property
    def complete(self) -> bool:
        return self.draw is not None and all(
            h in self.heats_in for h in range(1, self.draw.heats + 1)
        )


@dataclass
class RaceRounds:
    """One race's rounds: the log's inputs and what follows from them."""

    race: str
    seed: str = ""
    #: Explicit draws by round (the latest wins).
    draws: dict[str, DrawRound] = field(default_factory=dict)
    #: The stored base draw of each round (before adjustments).
    base: dict[str, Draw] = field(default_factory=dict)
    results: dict[tuple[str, int], HeatResult] = field(default_factory=dict)
    adjusts: list[RoundAdjust] = field(default_factory=list)
    rounds: dict[str, RoundState] = field(default_factory=dict)
    #: Rows of results left out (bib not in that heat), by result key.
    left_out: dict[str, list[str]] = field(default_factory=dict)
    #: The heat whose result came in last (round, heat): what the big screen shows.
    last_in: tuple[str, int] | None = None

    def state(self, round_id: str) -> RoundState:
        return self.rounds.get(round_id) or RoundState()

    def has_results(self, round_id: str) -> bool:
        return any(r == round_id for r, _ in self.results)

    def refresh(self, config: Rounds) -> None:
        """Re-derive every round from the inputs (see the module doc)."""
        out: dict[str, RoundState] = {}
        self.left_out = {}
        previous: RoundState | None = None
        for i, rnd in enumerate(config.rounds):
            rs = RoundState()
            if i > 0 and previous is not None:
                frozen = self.has_results(rnd.id) and rnd.id in self.base
                if not frozen:
                    self.base.pop(rnd.id, None)
                    if previous.complete and previous.qualified and previous.qualified.order:
                        explicit = self.draws.get(rnd.id)
                        seed = explicit.seed if explicit else round_seed(self.seed, rnd.id)
                        try:
                            self.base[rnd.id] = draw(
                                config, rnd.id, previous.qualified.order, seed, first=False
                            )
                        except DrawError as exc:
                            rs.trouble = str(exc)
            base = self.base.get(rnd.id)
            rs.draw = self._adjusted(config, rnd.id, base) if base is not None else None
            if rs.draw is not None:
                for (rid, heat), res in sorted(self.results.items()):
                    if rid != rnd.id or heat > rs.draw.heats:
                        continue
                    rs.heats_in[heat] = res
                    seated = {b for b, _ in rs.draw.heat(heat)}
                    for bib, lane, place, status, time_ms, reaction in res.rows:
                        if bib not in seated:
                            self.left_out.setdefault(res.key, []).append(bib)
                            continue
                        rs.marks[bib] = Mark(bib, heat, lane, place, status, time_ms, reaction)
                if not rs.complete and rnd.advance is not None and rs.heats_in:
                    # a heat's first places are Q the moment its result is in; the q
                    # (fastest of the rest) wait for every heat
                    top = rnd.advance.place
                    sure = {
                        m.bib: "Q"
                        for m in rs.marks.values()
                        if m.finished and m.place is not None and m.place <= top
                    }
                    rs.qualified = Qualified(sure, ())
                if rs.complete and rnd.advance is not None and i + 1 < len(config.rounds):
                    nxt = config.rounds[i + 1]
                    room = nxt.heats * config.lanes
                    winners = [a.bib for a in self.adjusts if a.kind == "lot" and a.round == rnd.id]
                    rs.qualified = qualify(
                        rnd, list(rs.marks.values()), rs.draw.heats, room,
                        round_seed(self.seed, rnd.id), winners,
                    )  # fmt: skip
            out[rnd.id] = rs
            previous = rs
        self.rounds = out

    def _adjusted(self, config: Rounds, round_id: str, base: Draw) -> Draw:
        seats = list(base.seats)
        heats = base.heats
        for a in self.adjusts:
            if a.round != round_id:
                continue
            if a.kind == "scratch":
                seats = [s for s in seats if s[0] != a.bib]
            elif a.kind == "add":
                seats = [s for s in seats if s[0] != a.bib and (s[1], s[2]) != (a.heat, a.lane)]
                seats.append((a.bib, a.heat, a.lane))
                heats = max(heats, a.heat)
        seats.sort(key=lambda s: (s[1], s[2]))
        return Draw(heats, tuple(seats))


def progress(rr: RaceRounds, config: Rounds) -> tuple[str, int]:
    """A race in rounds as a race's status (``not started`` until the first heat's result,
    ``finished`` once the last round is complete, else ``running``) and how many finished
    the last round."""
    last = rr.state(config.rounds[-1].id)
    finished = sum(1 for m in last.marks.values() if m.finished)
    if last.complete:
        return "finished", finished
    return ("running" if rr.results else "not started"), finished


class Meet:
    """Every race's rounds (only races whose event entry has ``rounds``)."""

    def __init__(self, event: Event) -> None:
        self.races: dict[str, RaceRounds] = {
            rid: RaceRounds(rid) for rid, race in event.races.items() if race.rounds is not None
        }
        self._adjust_keys: dict[str, RoundAdjust] = {}

    def get(self, race_id: str) -> RaceRounds | None:
        return self.races.get(race_id)


def meet_problem(event: Event, meet: Meet, record: MeetRecord) -> str:
    """Why ``record`` cannot be folded at all (empty when it can)."""
    rr = meet.get(record.race)
    race = event.races.get(record.race)
    if rr is None or race is None or race.rounds is None:
        return f"race {record.race!r} is not run in rounds at this event"
    if race.rounds.round(record.round) is None:
        return f"{race.name} has no round {record.round!r}"
    return ""


def apply_draw(
    event: Event, meet: Meet, d: DrawRound, entries: list[tuple[str, int | None]]
) -> str:
    """Fold a draw (``entries``: the race's entries now, bib and entry time); returns a
    problem, or empty."""
    rr = meet.races[d.race]
    config = event.races[d.race].rounds
    assert config is not None
    if rr.has_results(d.round):
        return f"{d.round} has results already: its draw stands"
    first = config.index(d.round) == 0
    rr.draws[d.round] = d
    if first:
        rr.seed = d.seed
        try:
            rr.base[d.round] = draw(config, d.round, entry_order(entries, d.seed), d.seed,
                                    first=True)  # fmt: skip
        except DrawError as exc:
            rr.refresh(config)
            return str(exc)
    rr.refresh(config)
    return ""


def apply_result(event: Event, meet: Meet, r: HeatResult) -> str:
    rr = meet.races[r.race]
    config = event.races[r.race].rounds
    assert config is not None
    current = rr.state(r.round).draw
    if current is None:
        return f"{r.round} of {event.races[r.race].name} is not drawn yet"
    if not 1 <= r.heat <= current.heats:
        return f"{r.round} has no heat {r.heat}"
    rr.results[(r.round, r.heat)] = r
    rr.last_in = (r.round, r.heat)
    rr.refresh(config)
    left = rr.left_out.get(r.key)
    return f"not in heat {r.heat} of {r.round}: bib {', '.join(left)}" if left else ""


def apply_adjust(event: Event, meet: Meet, a: RoundAdjust) -> str:
    rr = meet.races[a.race]
    config = event.races[a.race].rounds
    assert config is not None
    if a.kind == "undo":
        target = meet._adjust_keys.get(a.target)
        if target is None or target not in rr.adjusts:
            return f"nothing to undo with key {a.target!r}"
        rr.adjusts.remove(target)
    else:
        heat = a.heat
        if a.kind == "scratch":
            drawn = rr.state(a.round).draw
            where = drawn.where(a.bib) if drawn is not None else None
            heat = where[0] if where is not None else 0
        if a.kind in ("scratch", "add") and (a.round, heat) in rr.results:
            return f"heat {heat} of {a.round} has its result already: its draw stands"
        if a.kind == "add" and not (1 <= a.lane <= config.lanes and a.heat >= 1):
            return f"no lane {a.lane} in heat {a.heat}"
        rr.adjusts.append(a)
        meet._adjust_keys[a.key] = a
    rr.refresh(config)
    return ""
