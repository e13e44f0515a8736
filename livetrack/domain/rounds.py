"""Championship rounds of a track race: heats, semi-finals, a final.

The event file declares them in a race's ``rounds`` table (:func:`parse_rounds`); this module
holds those values and the pure rules the fold applies to them:

* **Seeding into heats** (:func:`draw`): the field is ranked (a first round by entry time, a
  later round by how each athlete qualified) and dealt into the heats in a serpentine
  (1, 2, 3, 3, 2, 1, 1, 2, …), so each heat gets a fair share of the fast athletes.
* **Lanes**: in a first round by lot among the most central lanes; in a later round by rank
  in groups (by default for 8 lanes: the four best ranked draw lanes 3–6 by lot, the next
  two 7–8, the last two 1–2).
* **Qualifying** (:func:`qualify`): the first ``place`` of each heat (``Q``) and the next
  ``time`` fastest (``q``). A tie at the last place by position qualifies both (one ``q``
  fewer); a tie in time (to the thousandth) for the last ``q`` qualifies both while the
  next round has lanes for them, else it is decided by lot (:func:`lot`), unless the timer
  entered who won the lots drawn by hand.

Every lot is a hash of the seed recorded in the log with what is being decided, so every
process and every replay draws the same.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from livetrack.domain.model import ConfigError

Status = str  # "ok" | "DNS" | "DNF" | "DQ"
STATUSES = ("ok", "DNS", "DNF", "DQ")


@dataclass(frozen=True, slots=True)
class Advance:
    """Who goes on from a round: the first ``place`` of each heat and the ``time`` fastest
    of the rest."""

    place: int
    time: int = 0


@dataclass(frozen=True, slots=True)
class Round:
    id: str
    name: str
    #: The round number a photo-finish file names (``.lif`` header), 1 for the first round.
    number: int
    #: How many heats; 0 in a first round: as many as the entries need.
    heats: int = 0
    #: None for the last round.
    advance: Advance | None = None


@dataclass(frozen=True, slots=True)
class Rounds:
    """A race run in rounds on ``lanes`` lanes."""

    rounds: tuple[Round, ...]
    lanes: int = 8
    #: The event number the photo-finish system gives this race (``.lif`` header).
    lynx_event: int = 0
    #: Lanes in order of preference, in groups drawn by lot (see the module doc).
    groups: tuple[tuple[int, ...], ...] = ()

    def round(self, round_id: str) -> Round | None:
        return next((r for r in self.rounds if r.id == round_id), None)

    def index(self, round_id: str) -> int:
        return next(i for i, r in enumerate(self.rounds) if r.id == round_id)

    def by_number(self, number: int) -> Round | None:
        return next((r for r in self.rounds if r.number == number), None)

    def lane_groups(self) -> tuple[tuple[int, ...], ...]:
        return self.groups or default_groups(self.lanes)


def default_groups(lanes: int) -> tuple[tuple[int, ...], ...]:
    """The middle lanes (lanes 3–6 of 8), then the outer lanes, then the inner ones."""
    if lanes <= 2:
        return (tuple(range(1, lanes + 1)),)
    low = math.ceil(lanes / 4) + 1
    high = lanes - lanes // 4
    middle = tuple(range(low, high + 1))
    outer = tuple(range(high + 1, lanes + 1))
    inner = tuple(range(1, low))
    return tuple(g for g in (middle, outer, inner) if g)


# -- the event file ------------------------------------------------------------------------


def _whole(data: Mapping[str, Any], key: str, path: str, default: int, low: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{path}.{key}", f"must be a whole number from {low}")
    return value


def parse_rounds(value: Any, path: str) -> Rounds:
    """``[race.rounds]``: ``lanes``, ``lynx_event``, optional ``lane_groups`` and a list of
    ``[[race.rounds.round]]`` with ``id``, ``name``, ``heats``, ``number`` and, on every
    round but the last, ``advance = { place = 2, time = 2 }``."""
    if not isinstance(value, dict):
        raise ConfigError(path, "must be a table with lanes and [[...round]]")
    allowed = {"lanes", "lynx_event", "lane_groups", "round"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}", f"unknown key (expected one of: "
                          f"{', '.join(sorted(allowed))})")  # fmt: skip
    lanes = _whole(value, "lanes", path, 8, 1)
    if lanes > 12:
        raise ConfigError(f"{path}.lanes", "at most 12 lanes")
    lynx_event = _whole(value, "lynx_event", path, 0, 0)
    groups: tuple[tuple[int, ...], ...] = ()
    if "lane_groups" in value:
        raw = value["lane_groups"]
        ok = isinstance(raw, list) and all(
            isinstance(g, list) and g and all(isinstance(n, int) for n in g) for g in raw
        )
        flat = [n for g in raw for n in g] if ok else []
        if not ok or sorted(flat) != list(range(1, lanes + 1)):
            raise ConfigError(
                f"{path}.lane_groups", f"must be lists that hold each lane 1–{lanes} once"
            )
        groups = tuple(tuple(g) for g in raw)
    raw_rounds = value.get("round", [])
    if not isinstance(raw_rounds, list) or not all(isinstance(r, dict) for r in raw_rounds):
        raise ConfigError(f"{path}.round", "must be a list of tables ([[race.rounds.round]])")
    if len(raw_rounds) < 2:
        raise ConfigError(f"{path}.round", "needs at least two rounds (e.g. heats and a final)")
    rounds: list[Round] = []
    for i, r in enumerate(raw_rounds):
        where = f"{path}.round[{i}]"
        unknown = sorted(set(r) - {"id", "name", "heats", "number", "advance"})
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}", "unknown key (expected one of: advance, "
                              "heats, id, name, number)")  # fmt: skip
        rid = r.get("id")
        if not isinstance(rid, str) or not rid.isidentifier() or len(rid) > 20:
            raise ConfigError(f"{where}.id", "must be a short id (letters, digits, '_')")
        if any(x.id == rid for x in rounds):
            raise ConfigError(f"{where}.id", f"duplicate round {rid!r}")
        name = r.get("name", rid.replace("_", " ").title())
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name", "must be a string")
        heats = _whole(r, "heats", where, 0 if i == 0 else 1, 0 if i == 0 else 1)
        number = _whole(r, "number", where, i + 1, 1)
        last = i == len(raw_rounds) - 1
        advance = None
        if "advance" in r:
            if last:
                raise ConfigError(f"{where}.advance", "the last round has nobody to send on")
            a = r["advance"]
            if not isinstance(a, dict) or set(a) - {"place", "time"}:
                raise ConfigError(f"{where}.advance", "must be { place = N, time = M }")
            advance = Advance(_whole(a, "place", f"{where}.advance", 0, 0),
                              _whole(a, "time", f"{where}.advance", 0, 0))  # fmt: skip
            if advance.place + advance.time == 0:
                raise ConfigError(f"{where}.advance", "must send somebody on")
        elif not last:
            raise ConfigError(f"{where}.advance", "is required on every round but the last")
        rounds.append(Round(rid, name, number, heats, advance))
    for i, r in enumerate(rounds[:-1]):
        nxt = rounds[i + 1]
        assert r.advance is not None
        room = nxt.heats * lanes
        if r.heats and r.heats * r.advance.place + r.advance.time > room:
            raise ConfigError(
                f"{path}.round[{i}].advance",
                f"sends {r.heats * r.advance.place + r.advance.time} on to {nxt.heats} "
                f"heat(s) of {lanes} lanes",
            )
        if not r.heats and r.advance.time > room:
            raise ConfigError(f"{path}.round[{i}].advance", f"more than {room} lanes next round")
    if len({r.number for r in rounds}) != len(rounds):
        raise ConfigError(f"{path}.round", "two rounds have the same number")
    return Rounds(tuple(rounds), lanes, lynx_event, groups)


# -- lots ----------------------------------------------------------------------------------


def lot(seed: str, *what: object) -> int:
    """A number drawn by lot for ``what`` from ``seed``: the same everywhere, every time."""
    text = "\x1f".join([seed, *map(str, what)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def round_seed(seed: str, round_id: str) -> str:
    """The seed of a later round's draw, made from the seed the first draw recorded."""
    return hashlib.sha256(f"{seed}\x1f{round_id}".encode()).hexdigest()[:16]


# -- draws ---------------------------------------------------------------------------------


class DrawError(ValueError):
    """A draw that cannot be made (more athletes than lanes, nobody to draw)."""


@dataclass(frozen=True, slots=True)
class Draw:
    """A round's heats: each seat is (bib, heat, lane), heats and lanes from 1."""

    heats: int
    seats: tuple[tuple[str, int, int], ...]

    def heat(self, n: int) -> list[tuple[str, int]]:
        """Heat ``n``'s (bib, lane) in lane order."""
        return sorted(((b, ln) for b, h, ln in self.seats if h == n), key=lambda s: s[1])

    def where(self, bib: str) -> tuple[int, int] | None:
        return next(((h, ln) for b, h, ln in self.seats if b == bib), None)

    def bibs(self) -> set[str]:
        return {b for b, _, _ in self.seats}


def serpentine(ranked: Sequence[str], heats: int) -> list[list[str]]:
    """Deal ``ranked`` into ``heats`` heats: 1, 2, …, n, n, …, 2, 1, 1, 2, …"""
    out: list[list[str]] = [[] for _ in range(heats)]
    for i, bib in enumerate(ranked):
        lap, pos = divmod(i, heats)
        out[pos if lap % 2 == 0 else heats - 1 - pos].append(bib)
    return out


def draw(rounds: Rounds, round_id: str, ranked: Sequence[str], seed: str, *, first: bool) -> Draw:
    """Seed ``ranked`` (best first) into the heats of ``round_id`` and draw their lanes."""
    rnd = rounds.round(round_id)
    if rnd is None:
        raise DrawError(f"no round {round_id!r}")
    if not ranked:
        raise DrawError(f"nobody to draw into {rnd.name}")
    heats = rnd.heats or math.ceil(len(ranked) / rounds.lanes)
    if len(ranked) > heats * rounds.lanes:
        raise DrawError(
            f"{len(ranked)} athletes do not fit {heats} heat(s) of {rounds.lanes} lanes"
        )
    groups = rounds.lane_groups()
    seats: list[tuple[str, int, int]] = []
    for h, members in enumerate(serpentine(ranked, heats), start=1):
        if first:  # by lot among the most central lanes
            lanes = [ln for g in groups for ln in g][: len(members)]
            lanes.sort(key=lambda ln: lot(seed, "lane", round_id, h, ln))
            seats.extend((b, h, ln) for b, ln in zip(members, lanes, strict=True))
            continue
        rest = list(members)
        for g in groups:  # by rank, in groups, by lot within each group
            take, rest = rest[: len(g)], rest[len(g) :]
            lanes = sorted(g, key=lambda ln: lot(seed, "lane", round_id, h, ln))
            seats.extend((b, h, ln) for b, ln in zip(take, lanes, strict=False))
    seats.sort(key=lambda s: (s[1], s[2]))
    return Draw(heats, tuple(seats))


def entry_order(entries: Iterable[tuple[str, int | None]], seed: str) -> list[str]:
    """Entries (bib, entry time in ms or None) best first; no time last; ties by lot."""
    return [
        b
        for b, t in sorted(
            entries, key=lambda e: (e[1] is None, e[1] or 0, lot(seed, "entry", e[0]))
        )
    ]


# -- results and qualifying -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """One athlete's result in a heat (times in ms, to the thousandth)."""

    bib: str
    heat: int
    lane: int | None
    place: int | None
    status: Status
    time_ms: int | None
    reaction_ms: int | None = None

    @property
    def finished(self) -> bool:
        return self.status == "ok" and self.time_ms is not None and self.place is not None


@dataclass(frozen=True, slots=True)
class Qualified:
    """Who went on from a round: ``marks[bib]`` is ``Q`` or ``q``; ``by_lot`` those whose
    ``q`` a drawing of lots decided; ``order`` them best first (the next round's seeding)."""

    marks: Mapping[str, str]
    order: tuple[str, ...]
    by_lot: frozenset[str] = frozenset()
    #: Tied athletes who lost the lots (shown on the results).
    lost_lot: frozenset[str] = frozenset()


def qualify(
    rnd: Round, results: Sequence[Mark], heats: int, room: int, seed: str,
    lot_winners: Iterable[str] = (),
) -> Qualified:  # fmt: skip
    """Who of ``results`` (every heat of ``rnd``, ``heats`` of them) goes on to a round with
    ``room`` lanes (see the module doc for the tie rules)."""
    adv = rnd.advance
    if adv is None:
        return Qualified({}, ())
    winners = set(lot_winners)
    done = [m for m in results if m.finished]
    big_q = sorted(
        (m for m in done if m.place is not None and m.place <= adv.place),
        key=lambda m: (m.place, m.time_ms, lot(seed, "rank", m.bib)),
    )
    taken = {m.bib for m in big_q}
    rest = sorted(
        (m for m in done if m.bib not in taken),
        key=lambda m: (m.time_ms, lot(seed, "rank", m.bib)),
    )
    slots = max(0, min(room, heats * adv.place + adv.time) - len(big_q))
    small_q = rest[:slots]
    by_lot: set[str] = set()
    lost: set[str] = set()
    if 0 < slots < len(rest) and rest[slots].time_ms == rest[slots - 1].time_ms:
        boundary = rest[slots - 1].time_ms
        ahead = [m for m in rest if m.time_ms is not None and boundary is not None
                 and m.time_ms < boundary]  # fmt: skip
        tied = [m for m in rest if m.time_ms == boundary]
        free = room - len(big_q) - len(ahead)
        if free >= len(tied):
            small_q = ahead + tied
        else:
            tied.sort(key=lambda m: (m.bib not in winners, lot(seed, "tie", rnd.id, m.bib)))
            small_q = ahead + tied[:free]
            by_lot = {m.bib for m in tied[:free] if m.bib not in winners}
            lost = {m.bib for m in tied[free:]}
    marks = {m.bib: "Q" for m in big_q}
    marks.update({m.bib: "q" for m in small_q})
    order = tuple(m.bib for m in big_q) + tuple(m.bib for m in small_q)
    return Qualified(marks, order, frozenset(by_lot), frozenset(lost))


def fmt_track(ms: int | None) -> str:
    """A track time to the hundredth, rounded up (``10.53``, ``1:02.34``)."""
    if ms is None:
        return ""
    hundredths = -(-ms // 10)
    s, h = divmod(hundredths, 100)
    m, s = divmod(s, 60)
    return f"{m}:{s:02d}.{h:02d}" if m else f"{s}.{h:02d}"


def fmt_thousandths(ms: int | None) -> str:
    if ms is None:
        return ""
    s, t = divmod(ms, 1000)
    m, s = divmod(s, 60)
    return f"{m}:{s:02d}.{t:03d}" if m else f"{s}.{t:03d}"
