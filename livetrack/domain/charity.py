"""Fun-run charity totals, computed from the fold's state (pure).

Each entrant may name a ``charity`` and a ``pledged`` amount (from the participants CSV).
Two totals are kept, per charity and overall, and both are shown:

* **raised**: the pledges of entrants who have *finished* (a pledge is earned by finishing,
  which is what sponsors are usually asked to pay for). It grows live as runners cross the
  line; a DNF or DQ is not counted.
* **pledged**: the pledges of *every entrant* who has not been marked DNS (what the day can
  raise if everybody finishes).

Entrants with no charity count towards ``(no charity)`` only when they pledged something.
Amounts are in the event's currency (pounds in the demo), kept as floats rounded to pennies.
"""

from __future__ import annotations

from dataclasses import dataclass

from livetrack.domain.state import RaceState

NO_CHARITY = "(no charity)"


@dataclass(frozen=True, slots=True)
class CharityTotal:
    """One charity's totals: ``raised`` by finishers, ``pledged`` by all entrants."""

    charity: str
    raised: float
    pledged: float
    finishers: int
    entrants: int


@dataclass(frozen=True, slots=True)
class Totals:
    """Every charity (largest ``raised`` first) and the overall totals."""

    charities: tuple[CharityTotal, ...]
    raised: float
    pledged: float
    finishers: int
    entrants: int


def charity_totals(state: RaceState, race_id: str) -> Totals:
    """The totals of ``race_id`` (any race; usually the fun run) from the fold's state."""
    finish = state.event.races[race_id].course.checkpoints[-1].id
    acc: dict[str, list[float]] = {}
    for r in state.runners.values():
        if r.race.id != race_id or r.status == "DNS":
            continue
        name = r.p.charity or NO_CHARITY
        if not r.p.charity and r.p.pledged <= 0:
            continue
        row = acc.setdefault(name, [0.0, 0.0, 0, 0])
        done = finish in r.passings and r.status == "ok"
        row[1] += r.p.pledged
        row[3] += 1
        if done:
            row[0] += r.p.pledged
            row[2] += 1
    rows = sorted(
        (
            CharityTotal(name, round(v[0], 2), round(v[1], 2), int(v[2]), int(v[3]))
            for name, v in acc.items()
        ),
        key=lambda c: (-c.raised, -c.pledged, c.charity),
    )
    return Totals(
        charities=tuple(rows),
        raised=round(sum(c.raised for c in rows), 2),
        pledged=round(sum(c.pledged for c in rows), 2),
        finishers=sum(c.finishers for c in rows),
        entrants=sum(c.entrants for c in rows),
    )


def has_charity(state: RaceState, race_id: str) -> bool:
    """Whether any entrant of ``race_id`` runs for a charity or pledged money."""
    return any(
        r.p.charity or r.p.pledged > 0 for r in state.runners.values() if r.race.id == race_id
    )
